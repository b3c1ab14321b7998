"""Source generation for the depthwise convolution (tactic dwconv): pure strings.

A depthwise conv (group == Cin == Cout, one filter per channel) is KH*KW multiply-adds per output
element: no reduction across channels, so there is nothing for a GEMM tile to do. One program
computes a [BLOCK_H x BLOCK_W output pixels, BLOCK_C channels] tile of one image: for every window
tap it loads the input pixels of the tile (BLOCK_C contiguous channels each: NHWC, vectorized) and
one weight vector, and accumulates in fp32. Neighbouring taps re-read mostly the same input lines,
which the L1 serves, so HBM traffic stays close to one read of the input and one write of the
output. Pixels outside the image (padding, borders) are masked to zero.

The weight [C, 1, KH, KW] is read through its strides, as the engine holds it (a tap's BLOCK_C
weights are a strided gather, but they are BLOCK_C values against BLOCK_H*BLOCK_W*BLOCK_C
multiply-adds and stay in L1; a derived copy would go stale after a refit). The epilogue adds
the bias, applies the layer's expression (extras read at (n, c, oh, ow) through broadcast strides)
and stores the cast result through the output's strides.

Specialized into the source: window, strides, begin pads (end pads only shape the output), dtypes,
bias and epilogue, so layers of one geometry share one compiled kernel."""
from __future__ import annotations

from dataclasses import dataclass

from .codegen import PRELUDE
from .conv_source import epilogue_lines


@dataclass(frozen=True)
class DwSignature:
    """What one generated depthwise conv kernel is specialized on."""
    dtype: str  # x and w
    out_dtype: str
    bias_dtype: str | None  # None: no bias
    extra_dtypes: tuple  # epilogue extras (inputs 1.. of the expression)
    epilogue: str  # JSON of the expression, "" for none
    kernel: tuple  # (KH, KW)
    strides: tuple  # (SH, SW)
    pads: tuple  # begin pads (PH, PW)


def _params(sig: DwSignature, consts) -> list[str]:
    ps = ["x", "w"] + (["b"] if sig.bias_dtype else []) + [f"e{i}" for i in range(len(sig.extra_dtypes))]
    ps += ["out", "C", "H", "W", "OH", "OW", "N_H", "N_W", "N_C", "sxn", "sxc", "sxh", "sxw", "swc", "swh", "sww"]
    ps += [f"s{i}_{d}" for i in range(len(sig.extra_dtypes)) for d in range(4)]
    ps += ["so_n", "so_c", "so_h", "so_w"] + [c for c, _ in consts]
    return ps + [f"{k}: tl.constexpr" for k in ("BLOCK_H", "BLOCK_W", "BLOCK_C", "EVEN_C")]


# channel blocks fastest: the programs of one pixel tile run together and share its input lines
_PROLOGUE = """    pid = tl.program_id(0)
    pid_c = pid % N_C
    t_ = pid // N_C
    pid_w = t_ % N_W
    t_ = t_ // N_W
    pid_h = t_ % N_H
    nb = (t_ // N_H).to(tl.int64)
    p = tl.arange(0, BLOCK_H * BLOCK_W)
    oh = pid_h * BLOCK_H + p // BLOCK_W
    ow = pid_w * BLOCK_W + p % BLOCK_W
    rc = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    m_ok = (oh < OH) & (ow < OW)
    c_ok = rc < C
    if EVEN_C:  # no channel mask: masks stay constant along C and loads vectorize
        cmask = tl.full([1, BLOCK_C], 1, tl.int1)
    else:
        cmask = c_ok[None, :]
    xc = (rc * sxc)[None, :]
    wc = rc * swc
    x_img = x + nb * sxn
    acc = tl.zeros((BLOCK_H * BLOCK_W, BLOCK_C), dtype=tl.float32)"""


def _window(sig: DwSignature) -> list[str]:
    """The static tap loop: masked input tile times one weight vector per tap."""
    (kh_, kw_), (sh, sw), (ph, pw) = sig.kernel, sig.strides, sig.pads
    i2, i3 = " " * 8, " " * 12
    return [f"    ih0 = oh * {sh} - {ph}", f"    iw0 = ow * {sw} - {pw}",
            f"    for kh in tl.static_range({kh_}):",
            f"{i2}ih = ih0 + kh",
            f"{i2}h_ok = m_ok & (ih >= 0) & (ih < H)",
            f"{i2}x_row = x_img + ih * sxh",
            f"{i2}for kw in tl.static_range({kw_}):",
            f"{i3}iw = iw0 + kw",
            f"{i3}ok = h_ok & (iw >= 0) & (iw < W)",
            f"{i3}v = tl.load((x_row + iw * sxw)[:, None] + xc, mask=ok[:, None] & cmask, other=0.0)",
            f"{i3}if EVEN_C:",
            f"{i3}    wv = tl.load(w + (kh * swh + kw * sww) + wc)",
            f"{i3}else:",
            f"{i3}    wv = tl.load(w + (kh * swh + kw * sww) + wc, mask=c_ok, other=0.0)",
            f"{i3}acc += v.to(tl.float32) * wv.to(tl.float32)[None, :]"]


def dwconv_source(sig: DwSignature, name: str = "tf_dwconv") -> tuple[str, list]:
    """(module source, [(const arg name, value)]) of the depthwise conv kernel for sig."""
    consts: list = []
    epi = epilogue_lines(sig, consts, "rc", "c_ok")  # collects the non-finite constants the header lists
    head = ["", "", "@triton.jit", f"def {name}({', '.join(_params(sig, consts))}):"]
    return PRELUDE + "\n".join(head + [_PROLOGUE] + _window(sig) + epi) + "\n", consts
