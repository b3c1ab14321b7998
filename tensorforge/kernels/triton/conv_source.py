"""Source generation for the implicit-GEMM convolution (tactic conv_igemm): pure strings.

GEMM view of a 2-D convolution over NHWC data: M = N*OH*OW output pixels, N = Cout, K = KH*KW*Cin.
One program computes a BLOCK_M x BLOCK_N output tile (grouped program order for L2 reuse); its K
loop is a single flattened loop over (kh, kw, Cin block) so that Triton pipelines it. Input
pixels outside the image (padding, borders) are masked to zero. Every tensor is read through its
strides (channels-last = unit channel stride = the fast, vectorized case). The epilogue adds the
bias, applies the layer's expression (extras read at (n, c, oh, ow) through broadcast strides)
and stores the cast result through the output's strides.

Specialized into the source: the kernel window, strides, begin pads, dilations, dtypes, bias and
epilogue (so layers of one conv geometry share one compiled kernel); POINT marks a 1x1, stride-1,
pad-0 conv (a plain GEMM over pixel rows: no border masks, no window loop)."""
from __future__ import annotations

import json
from dataclasses import dataclass

from .codegen import PRELUDE, TL, expr_lines, load


@dataclass(frozen=True)
class ConvSignature:
    """What one generated conv kernel is specialized on."""
    dtype: str  # x and w
    out_dtype: str
    bias_dtype: str | None  # None: no bias
    extra_dtypes: tuple  # epilogue extras (inputs 1.. of the expression)
    epilogue: str  # JSON of the expression, "" for none
    kernel: tuple  # (KH, KW)
    strides: tuple  # (SH, SW)
    pads: tuple  # begin pads (PH, PW); end pads only shape the output
    dilations: tuple  # (DH, DW)

    @property
    def point(self) -> bool:
        return self.kernel == (1, 1) and self.strides == (1, 1) and self.pads == (0, 0)


def _params(sig: ConvSignature, consts) -> list[str]:
    ps = ["x", "w"] + (["b"] if sig.bias_dtype else []) + [f"e{i}" for i in range(len(sig.extra_dtypes))]
    ps += ["out", "M", "H", "W", "OH", "OW", "Cin", "Cout", "sxn", "sxc", "sxh", "sxw",
           "swo", "swc", "swh", "sww"]
    ps += [f"s{i}_{d}" for i in range(len(sig.extra_dtypes)) for d in range(4)]
    ps += ["so_n", "so_c", "so_h", "so_w"] + [c for c, _ in consts]
    return ps + [f"{k}: tl.constexpr" for k in ("BLOCK_M", "BLOCK_N", "BLOCK_K", "GROUP_M", "EVEN_K")]


_PROLOGUE = """    pid = tl.program_id(0)
    num_m = tl.cdiv(M, BLOCK_M)
    num_n = tl.cdiv(Cout, BLOCK_N)
    width = GROUP_M * num_n
    first_m = (pid // width) * GROUP_M
    gsize = tl.minimum(num_m - first_m, GROUP_M)
    pid_m = first_m + (pid % width) % gsize
    pid_n = (pid % width) // gsize
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    m_ok = rm < M
    n_ok = rn < Cout
    ow = rm % OW
    t_ = rm // OW
    oh = t_ % OH
    nb = (t_ // OH).to(tl.int64)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    w_col = w + rn[None, :] * swo"""


def _dot(sig) -> str:
    prec = ', input_precision="ieee"' if sig.dtype == "float32" else ""
    return f"acc = tl.dot(a, bt, acc{prec})"


def _point_loop(sig) -> list[str]:
    """K loop of a 1x1 stride-1 pad-0 conv: input pixel = output pixel, Cin blocks only."""
    i2 = " " * 8
    return ["    x_row = x + nb * sxn + oh * sxh + ow * sxw",
            "    for c0 in range(0, Cin, BLOCK_K):",
            f"{i2}rc = c0 + rk",
            f"{i2}if EVEN_K:",
            f"{i2}    a = tl.load(x_row[:, None] + rc[None, :] * sxc, mask=m_ok[:, None], other=0.0)",
            f"{i2}    bt = tl.load(w_col + rc[:, None] * swc, mask=n_ok[None, :], other=0.0)",
            f"{i2}else:",
            f"{i2}    k_ok = rc < Cin",
            f"{i2}    a = tl.load(x_row[:, None] + rc[None, :] * sxc,",
            f"{i2}                mask=m_ok[:, None] & k_ok[None, :], other=0.0)",
            f"{i2}    bt = tl.load(w_col + rc[:, None] * swc, mask=k_ok[:, None] & n_ok[None, :], other=0.0)",
            f"{i2}{_dot(sig)}"]


def _window_loop(sig) -> list[str]:
    """K loop over (kh, kw, Cin block), flattened; border pixels are masked to zero."""
    (kh_, kw_), (sh, sw), (ph, pw), (dh, dw) = sig.kernel, sig.strides, sig.pads, sig.dilations
    i2 = " " * 8
    return [f"    ih0 = oh * {sh} - {ph}", f"    iw0 = ow * {sw} - {pw}",
            "    x_img = x + nb * sxn",
            "    kb = tl.cdiv(Cin, BLOCK_K)",
            f"    for it in range(0, {kh_ * kw_} * kb):",
            f"{i2}r_ = it // kb",
            f"{i2}rc = (it - r_ * kb) * BLOCK_K + rk",
            f"{i2}kh = r_ // {kw_}",
            f"{i2}kw = r_ - kh * {kw_}",
            f"{i2}ih = ih0 + kh * {dh}",
            f"{i2}iw = iw0 + kw * {dw}",
            f"{i2}p_ok = m_ok & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)",
            f"{i2}x_pix = x_img + ih * sxh + iw * sxw",
            f"{i2}w_pix = w_col + kh * swh + kw * sww",
            f"{i2}if EVEN_K:",
            f"{i2}    a = tl.load(x_pix[:, None] + rc[None, :] * sxc, mask=p_ok[:, None], other=0.0)",
            f"{i2}    bt = tl.load(w_pix + rc[:, None] * swc, mask=n_ok[None, :], other=0.0)",
            f"{i2}else:",
            f"{i2}    k_ok = rc < Cin",
            f"{i2}    a = tl.load(x_pix[:, None] + rc[None, :] * sxc,",
            f"{i2}                mask=p_ok[:, None] & k_ok[None, :], other=0.0)",
            f"{i2}    bt = tl.load(w_pix + rc[:, None] * swc, mask=k_ok[:, None] & n_ok[None, :], other=0.0)",
            f"{i2}{_dot(sig)}"]


def _pix_offset(s: str) -> str:
    """Offset of (n, oh, ow) for strides named {s}0, {s}2, {s}3 (channel added per column)."""
    return f"nb * {s}0 + oh * {s}2 + ow * {s}3"


def epilogue_lines(sig, consts, col: str = "rn", col_ok: str = "n_ok") -> list[str]:
    """Bias, the expression over (y, extras), cast and store through the output's strides, for a tile
    of (n, oh, ow) rows by output-channel columns `col` (valid where `col_ok`): shared by the conv
    kernels (conv_igemm: rn / n_ok; dwconv: rc / c_ok)."""
    lines = [f"    mask = m_ok[:, None] & {col_ok}[None, :]"]
    if sig.bias_dtype:
        bias = load("b", "full", sig.bias_dtype, {"full": col}, col_ok)
        lines.append(f"    acc = acc + ({bias})[None, :]")
    out = "acc"
    if sig.epilogue:
        vals = []
        for i, dt in enumerate(sig.extra_dtypes):
            off = f"({_pix_offset(f's{i}_')})[:, None] + {col}[None, :] * s{i}_1"
            lines.append(f"    x{i} = {load(f'e{i}', 'full', dt, {'full': off}, 'mask')}")
            vals.append(f"x{i}")
        expr = json.loads(sig.epilogue)
        body, out, _ = expr_lines(expr, ["acc"] + vals, [sig.dtype, *sig.extra_dtypes], "v", consts)
        lines += ["    " + ln for ln in body]
    lines.append(f"    o_off = (nb * so_n + oh * so_h + ow * so_w)[:, None] + {col}[None, :] * so_c")
    lines.append(f"    tl.store(out + o_off, ({out}).to({TL[sig.out_dtype]}), mask=mask)")
    return lines


def conv_source(sig: ConvSignature, name: str = "tf_conv_igemm") -> tuple[str, list]:
    """(module source, [(const arg name, value)]) of the implicit-GEMM conv kernel for sig."""
    consts: list = []
    loop = _point_loop(sig) if sig.point else _window_loop(sig)
    epi = epilogue_lines(sig, consts)  # collects the non-finite constants the header lists
    head = ["", "", "@triton.jit", f"def {name}({', '.join(_params(sig, consts))}):"]
    return PRELUDE + "\n".join(head + [_PROLOGUE] + loop + epi) + "\n", consts
