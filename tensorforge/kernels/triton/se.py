"""Triton squeeze-excitation (tactic "se") for fused.SqueezeExcite layers: 4-D float16 / bfloat16 /
float32 x (NCHW or NHWC), weights of x's dtype, any C and Cr <= MAX_CR.

Why: unfused, an SE block is 4 layers on the GPU (global pool, two 1x1 convs with their
activations as epilogues, the broadcast multiply; 5-6 kernels where an epilogue runs apart), the
convs tiny launches on [N, C, 1, 1] tensors (cuDNN calls of a few µs each for a few kFLOP). Here the gate [N, C] (fp32) is one
small kernel and the scale a second one that reads x and writes the output once: 2 launches and
x read twice + written once, which is the floor without fusing the SE into its neighbours.

Tactic params: GATE = "fused" (the gate kernel also pools: one program per image, best when H*W is
small) or "split" (a pool kernel sums (H*W range, n, channel block) tiles first: 3 launches, for
large images; POOL_P caps its pixel tile), BLOCK_P / BLOCK_C (the scale kernel's tile), num_warps, nhwc_ok.
The gate buffer is held per plan (per input signature). The kernel source is in se_source."""
from __future__ import annotations

import torch

from ..device import is_cuda
from ..layer_shapes import FLOATS, is_weight
from ..registry import tactic_family
from . import reference, tactic_dict
from .launch import compile_source, dtype_name
from .pool import _flat_stride
from .runners import _Runner

MAX_CR = 1024  # the hidden vector lives in registers of one program
ACT_CODES = {"": 0, "Relu": 1, "HardSwish": 2, "SiLU": 3}
LIMIT = 2 ** 31 - 1


def _np2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def _cr(w) -> int | None:
    """Cr of a [Cr, C] / [Cr, C, 1, 1] weight shape."""
    return int(w[0]) if len(w) in (2, 4) and all(d == 1 for d in w[2:]) else None


def legal(layer, shapes) -> bool:
    """SE layers this tactic covers at these shapes."""
    x = shapes.inp(0)
    if layer.type != "fused.SqueezeExcite" or x is None or x["dtype"] not in FLOATS or len(x["shape"]) != 4:
        return False
    if not all(isinstance(d, int) for d in x["shape"]) or layer.attrs.get("act1", "Relu") not in ACT_CODES:
        return False
    ws = [shapes.inp(i) for i in range(1, 5)]
    if not all(w is None or (is_weight(w) and w["dtype"] == x["dtype"]) for w in ws) or None in (ws[0], ws[2]):
        return False
    cr = _cr(ws[0]["shape"])
    return cr is not None and 0 < cr <= MAX_CR and layer.attrs.get("gate", "HardSigmoid") in ("HardSigmoid", "Sigmoid")


def _scale_tile(x, bp, bc):
    """(BLOCK_P, BLOCK_C) of the scale kernel: channels-last vectorizes along C, NCHW along H*W."""
    c, hw = x.shape[1], x.shape[2] * x.shape[3]
    elems = bp * bc
    if x.stride(1) == 1 and c > 1:
        cc = min(bc, _np2(c))
        return max(1, min(_np2(hw), elems // cc)), cc
    pp = min(_np2(hw), max(16, elems // 4))
    return pp, max(1, min(_np2(c), elems // pp))


def _dest(outs, x):
    """The caller's buffer when it fits (dense, x's shape and dtype), else a tensor in x's format."""
    o = outs[0] if outs else None
    if o is not None and o.shape == x.shape and o.dtype == x.dtype and (
            o.is_contiguous() or o.is_contiguous(memory_format=torch.channels_last)):
        return o
    cl = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return torch.empty_like(x, memory_format=torch.channels_last if cl else torch.contiguous_format)


class SERunner(_Runner):
    """One launch plan per input signature; the reference for inputs the kernels do not cover."""

    def plan(self, inputs):
        x, w1, b1, w2, b2 = (list(inputs) + [None] * 5)[:5]
        if x is None or x.dim() != 4 or x.numel() == 0 or dtype_name(x) not in FLOATS or w1 is None or w2 is None:
            return None
        n, c, h, w = x.shape
        cr = _cr(tuple(w1.shape))
        sp = _flat_stride(x)
        if cr is None or not 0 < cr <= MAX_CR or sp is None or tuple(w2.shape[:2]) != (c, cr) or \
                any(t is not None and t.dtype != x.dtype for t in (w1, b1, w2, b2)):
            return None
        a = self.attrs
        act, hard = ACT_CODES.get(a.get("act1", "Relu")), a.get("gate", "HardSigmoid") == "HardSigmoid"
        if act is None:
            return None
        src = _source()
        gate_k, scale_k = compile_source(src, "tf_se_gate"), compile_source(src, "tf_se_scale")
        split = self.params.get("GATE", "fused") == "split"
        hw = h * w
        br = _np2(cr)
        bc_g = max(1, min(_np2(c), max(16, 4096 // br)))
        bp_g = max(1, min(_np2(hw), 4096 // bc_g))
        gate = torch.empty((n, c), dtype=torch.float32, device=x.device)  # per plan, like gemm's workspace
        n_s, per, pbp, pbc = _pool_split(n, c, hw, int(self.params.get("POOL_P", 4096))) if split else (1, hw, 1, 1)
        n_pc = -(-c // pbc)
        pooled = torch.empty((n_s, n, c), dtype=torch.float32, device=x.device) if split else gate
        if split:
            pool_k = compile_source(src, "tf_se_pool")
        bp, bc = _scale_tile(x, int(self.params.get("BLOCK_P", 64)), int(self.params.get("BLOCK_C", 64)))
        n_p, n_c = -(-hw // bp), -(-c // bc)
        gmeta = dict(POOL_HERE=not split, HAS_B1=b1 is not None, HAS_B2=b2 is not None, ACT=act, HARD=hard,
                     BLOCK_P=bp_g, BLOCK_C=bc_g, BLOCK_R=br)
        ab = [float(a.get("alpha", 0.2)), float(a.get("beta", 0.5))]
        nw = int(self.params.get("num_warps", 4))

        def run(ins, outs=None):
            xi, v1, c1, v2, c2 = (list(ins) + [None] * 5)[:5]
            out = _dest(outs, xi)
            big = max(_extent(xi), _extent(out)) >= LIMIT
            sx = [xi.stride(0), xi.stride(1), sp]
            if split:
                pool_k[(n_pc * n * n_s,)](xi, pooled, n, c, hw, per, n_pc, *sx, BLOCK_P=pbp, BLOCK_C=pbc,
                                          num_warps=4)
            s1 = (v1.stride(0), v1.stride(1))
            s2 = (v2.stride(0), v2.stride(1))
            gate_k[(n,)](xi, pooled, v1, v1 if c1 is None else c1, v2, v2 if c2 is None else c2, gate, n, n_s, c,
                         cr, hw, *sx, *s1, *s2, *ab, num_warps=nw, **gmeta)
            so = [out.stride(0), out.stride(1), _flat_stride(out)]
            scale_k[(n * n_p * n_c,)](xi, gate, out, c, hw, n_p, n_c, *sx, *so, BIG=big, BLOCK_P=bp, BLOCK_C=bc,
                                      num_warps=nw)
            return [out]
        return run


def _extent(t) -> int:
    return 1 + sum((d - 1) * abs(s) for d, s in zip(t.shape, t.stride()))


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _pool_split(n: int, c: int, hw: int, max_p: int = 4096) -> tuple:
    """(S, PER, BLOCK_P, BLOCK_C) of the split pool: channel blocks of up to 64, then H*W cut into S
    ranges of PER pixels (a multiple of BLOCK_P, >= 4 tiles each) until about 2 x 132 programs run
    (an H200's SMs)."""
    pbc = min(_np2(c), 64)
    pbp = max(1, min(_np2(hw), 4096 // pbc, max_p))
    n_s = max(1, min(_cdiv(264, n * _cdiv(c, pbc)), _cdiv(hw, 4 * pbp)))
    per = _cdiv(_cdiv(hw, n_s), pbp) * pbp
    return _cdiv(hw, per), per, pbp, pbc


def _source() -> str:
    from .se_source import SRC
    return SRC


def make_se(layer, attrs, opset, device, params):
    """The se runner of a layer (falls back to the reference for unsupported inputs)."""
    return SERunner(attrs, params, reference(layer, attrs, opset))


def configs(n: int, c: int, hw: int) -> list[dict]:
    """Level-3 configs: the fused gate (one program per image) and, when an image is large, the split
    gate (pooled by (pixel range, n, channel block) programs first; first in the list, which an
    untimed build takes, for images of 64K+ elements); more scale tiles at level 4."""
    out = [("fused", 64, 64, 4)]
    if hw * c >= 16384:  # one program per image pooling 64K+ elements leaves the GPU idle: split first
        out = out + [("split", 64, 64, 4)] if hw * c < 65536 else [("split", 64, 64, 4)] + out
    extra = [("fused", 32, 128, 8), ("split", 16, 128, 4)] if hw * c >= 16384 else [("fused", 16, 32, 4)]
    ts = [tactic_dict("se", GATE=g, BLOCK_P=bp, BLOCK_C=bc, num_warps=nw, nhwc_ok=True) for g, bp, bc, nw in out]
    for g, bp, bc, nw in extra:
        t = tactic_dict("se", GATE=g, BLOCK_P=bp, BLOCK_C=bc, num_warps=nw, nhwc_ok=True)
        t["level"] = 4
        ts.append(t)
    return ts


@tactic_family("triton", {"se": make_se}, library="TRITON", writes_in_place=True)
def se_candidates(layer, shapes, device) -> list[dict]:
    """se tactics for a fused.SqueezeExcite layer on CUDA (the aten reference is timed against them)."""
    if not is_cuda(device) or not legal(layer, shapes):
        return []
    n, c, h, w = shapes.inp(0)["shape"]
    return configs(n, c, h * w)
