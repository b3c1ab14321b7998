"""Source generation for the implicit-GEMM convolution (tactic conv_igemm): pure strings.

GEMM view of a 2-D convolution over NHWC data: M = N*OH*OW output pixels, N = Cout, K = KH*KW*Cin.
One program computes a BLOCK_M x BLOCK_N output tile (grouped program order for L2 reuse); its K
loop is a single flattened loop over (kh, kw, Cin block) so that Triton pipelines it. Input
pixels outside the image (padding, borders) are masked to zero. Every tensor is read through its
strides (channels-last = unit channel stride = the fast, vectorized case). The epilogue adds the
bias, applies the layer's expression (extras read at (n, c, oh, ow) through broadcast strides)
and stores the cast result through the output's strides.

Quantized mode (qtype int8 / float8e4m3fn, fused.QConv): x and w hold symmetric 8-bit values, tl.dot
accumulates exactly (int32 / fp32); the epilogue dequantizes (x scale times the per-tensor or
per-output-channel weight scale), adds the bias, rounds to the layer's float type (`dtype`, as the
reference writes the scaled accumulator), dequantizes quantized extras, runs the expression and,
with out_q, quantizes the store as qgemm does (qgemm_source.requant_lines).

Specialized into the source: the kernel window, strides, begin pads, dilations, dtypes, bias and
epilogue (so layers of one conv geometry share one compiled kernel); POINT marks a 1x1, stride-1,
pad-0 conv (a plain GEMM over pixel rows: no border masks, no window loop)."""
from __future__ import annotations

import json
from dataclasses import dataclass

from .codegen import PRELUDE, TL, expr_lines, load
from .qgemm_source import FP8_DOT, requant_lines


@dataclass(frozen=True)
class ConvSignature:
    """What one generated conv kernel is specialized on."""
    dtype: str  # x and w; quantized: the type the scaled accumulator is written in (the epilogue's input 0)
    out_dtype: str
    bias_dtype: str | None  # None: no bias
    extra_dtypes: tuple  # epilogue extras (inputs 1.. of the expression)
    epilogue: str  # JSON of the expression, "" for none
    kernel: tuple  # (KH, KW)
    strides: tuple  # (SH, SW)
    pads: tuple  # begin pads (PH, PW); end pads only shape the output
    dilations: tuple  # (DH, DW)
    qtype: str | None = None  # quantized mode: x and w are int8 | float8e4m3fn
    per_channel: bool = False  # quantized: one weight scale per output channel (else one)
    extra_q: tuple = ()  # quantized: per extra, True when it is dequantized (scale, zero point args)
    out_q: bool = False  # quantized: the store quantizes (scale, zero point args)

    @property
    def point(self) -> bool:
        return self.kernel == (1, 1) and self.strides == (1, 1) and self.pads == (0, 0)


def _params(sig: ConvSignature, consts) -> list[str]:
    ps = ["x", "w"] + (["b"] if sig.bias_dtype else []) + [f"e{i}" for i in range(len(sig.extra_dtypes))]
    ps += ["ws"] if sig.qtype else []
    ps += ["out", "M", "H", "W", "OH", "OW", "Cin", "Cout", "sxn", "sxc", "sxh", "sxw",
           "swo", "swc", "swh", "sww"]
    ps += [f"s{i}_{d}" for i in range(len(sig.extra_dtypes)) for d in range(4)]
    ps += ["so_n", "so_c", "so_h", "so_w"] + _scalars(sig) + [c for c, _ in consts]
    return ps + [f"{k}: tl.constexpr" for k in ("BLOCK_M", "BLOCK_N", "BLOCK_K", "GROUP_M", "EVEN_K")]


def _scalars(sig) -> list[str]:
    """The quantized mode's scalar arguments: x scale, (scale, zero point) per quantized extra, output Q."""
    if not sig.qtype:
        return []
    ps = ["xs"] + [a for i, q in enumerate(sig.extra_q) if q for a in (f"e{i}s", f"e{i}z")]
    return ps + (["oqs", "oqz"] if sig.out_q else [])


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
    nb = (t_ // OH).to(tl.int64)"""


def _acc(sig) -> str:
    """The accumulator: int32 for int8 operands (exact), else fp32 (exact for e4m3 products too)."""
    return f"    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.{'int32' if sig.qtype == 'int8' else 'float32'})"


def _dot(sig) -> str:
    if sig.qtype == "int8":
        return "acc = tl.dot(a, bt, acc, out_dtype=tl.int32)"
    if sig.qtype:
        return f"acc = tl.dot(a, bt, acc, {FP8_DOT})"
    prec = ', input_precision="ieee"' if sig.dtype == "float32" and not sig.qtype else ""
    return f"acc = tl.dot(a, bt, acc{prec})"


def _zero(sig) -> str:
    return "0" if sig.qtype == "int8" else "0.0"  # (an int `other` does not cast to fp8)


def _point_loop(sig) -> list[str]:
    """K loop of a 1x1 stride-1 pad-0 conv: input pixel = output pixel, Cin blocks only."""
    i2, z = " " * 8, _zero(sig)
    return ["    x_row = x + nb * sxn + oh * sxh + ow * sxw",
            "    for c0 in range(0, Cin, BLOCK_K):",
            f"{i2}rc = c0 + rk",
            f"{i2}if EVEN_K:",
            f"{i2}    a = tl.load(x_row[:, None] + rc[None, :] * sxc, mask=m_ok[:, None], other={z})",
            f"{i2}    bt = tl.load(w_col + rc[:, None] * swc, mask=n_ok[None, :], other={z})",
            f"{i2}else:",
            f"{i2}    k_ok = rc < Cin",
            f"{i2}    a = tl.load(x_row[:, None] + rc[None, :] * sxc,",
            f"{i2}                mask=m_ok[:, None] & k_ok[None, :], other={z})",
            f"{i2}    bt = tl.load(w_col + rc[:, None] * swc, mask=k_ok[:, None] & n_ok[None, :], other={z})",
            f"{i2}{_dot(sig)}"]


def _window_loop(sig) -> list[str]:
    """K loop over (kh, kw, Cin block), flattened; border pixels are masked to zero."""
    (kh_, kw_), (sh, sw), (ph, pw), (dh, dw) = sig.kernel, sig.strides, sig.pads, sig.dilations
    i2, z = " " * 8, _zero(sig)
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
            f"{i2}    a = tl.load(x_pix[:, None] + rc[None, :] * sxc, mask=p_ok[:, None], other={z})",
            f"{i2}    bt = tl.load(w_pix + rc[:, None] * swc, mask=n_ok[None, :], other={z})",
            f"{i2}else:",
            f"{i2}    k_ok = rc < Cin",
            f"{i2}    a = tl.load(x_pix[:, None] + rc[None, :] * sxc,",
            f"{i2}                mask=p_ok[:, None] & k_ok[None, :], other={z})",
            f"{i2}    bt = tl.load(w_pix + rc[:, None] * swc, mask=k_ok[:, None] & n_ok[None, :], other={z})",
            f"{i2}{_dot(sig)}"]


def _pix_offset(s: str) -> str:
    """Offset of (n, oh, ow) for strides named {s}0, {s}2, {s}3 (channel added per column)."""
    return f"nb * {s}0 + oh * {s}2 + ow * {s}3"


def epilogue_lines(sig, consts, col: str = "rn", col_ok: str = "n_ok") -> list[str]:
    """Bias, the expression over (y, extras), cast and store through the output's strides, for a tile
    of (n, oh, ow) rows by output-channel columns `col` (valid where `col_ok`): shared by the conv
    kernels (conv_igemm: rn / n_ok; dwconv: rc / c_ok; qconv: with the quantized mode's dequantize
    before and output Q after)."""
    quant = getattr(sig, "qtype", None)
    lines = [f"    mask = m_ok[:, None] & {col_ok}[None, :]"]
    if quant:
        ws = f"tl.load(ws + {col}, mask={col_ok}, other=0.0)[None, :]" if sig.per_channel else "tl.load(ws)"
        lines.append(f"    acc = acc.to(tl.float32) * xs * {ws}")
    if sig.bias_dtype:
        bias = load("b", "full", sig.bias_dtype, {"full": col}, col_ok)
        lines.append(f"    acc = acc + ({bias})[None, :]")
    if quant and sig.dtype != "float32":  # the reference writes the scaled accumulator in the layer's type
        lines.append(f"    acc = acc.to({TL[sig.dtype]}).to(tl.float32)")
    out = "acc"
    if sig.epilogue:
        vals, in_dt = [], [sig.dtype]
        for i, dt in enumerate(sig.extra_dtypes):
            off = f"({_pix_offset(f's{i}_')})[:, None] + {col}[None, :] * s{i}_1"
            src = load(f"e{i}", "full", dt, {"full": off}, "mask")
            if quant and i < len(sig.extra_q) and sig.extra_q[i]:  # dequantized into the layer's type
                src = f"(({src}).to(tl.float32) - e{i}z) * e{i}s"
                src = src if sig.dtype == "float32" else f"({src}).to({TL[sig.dtype]}).to(tl.float32)"
                dt = sig.dtype
            lines.append(f"    x{i} = {src}")
            vals.append(f"x{i}")
            in_dt.append(dt)
        expr = json.loads(sig.epilogue)
        body, out, _ = expr_lines(expr, ["acc"] + vals, in_dt, "v", consts)
        lines += ["    " + ln for ln in body]
    lines.append(f"    o_off = (nb * so_n + oh * so_h + ow * so_w)[:, None] + {col}[None, :] * so_c")
    if quant and sig.out_q:
        return lines + requant_lines(sig.out_dtype, out, "o_off", "mask")
    lines.append(f"    tl.store(out + o_off, ({out}).to({TL[sig.out_dtype]}), mask=mask)")
    return lines


def conv_source(sig: ConvSignature, name: str = "tf_conv_igemm") -> tuple[str, list]:
    """(module source, [(const arg name, value)]) of the implicit-GEMM conv kernel for sig."""
    consts: list = []
    loop = _point_loop(sig) if sig.point else _window_loop(sig)
    epi = epilogue_lines(sig, consts)  # collects the non-finite constants the header lists
    head = ["", "", "@triton.jit", f"def {name}({', '.join(_params(sig, consts))}):"]
    body = [_PROLOGUE, _acc(sig), "    w_col = w + rn[None, :] * swo"] + loop + epi
    return PRELUDE + "\n".join(head + body) + "\n", consts
