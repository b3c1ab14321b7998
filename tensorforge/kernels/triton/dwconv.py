"""Triton depthwise convolution (tactic dwconv) for Conv / fused.ConvAct layers: 2-D, group ==
Cin == Cout (channel multiplier 1), a constant weight, float16 / bfloat16 / float32 data, windows
up to 7x7, strides 1 and 2, dilation 1, any non-negative (asymmetric) pads. Bias and the layer's
epilogue (folded BN scale, ReLU, hardswish, hardsigmoid, SiLU, residual...) run inside the kernel;
the result is stored channels-last, into the planned buffer when it is one.

Why: a depthwise conv is bandwidth bound (KH*KW multiply-adds per output element, no reduction
over channels). As a GEMM each channel is N=1, K=KH*KW, which a tensor-core tile pads to 16+
(conv_igemm declines groups); cuDNN fuses only ReLU, so hardswish / SiLU / BN-scale epilogues cost
a second pass over the output. This kernel reads NHWC tiles through L1, accumulates in fp32 on the
CUDA cores and applies any epilogue before its one store.

Tactic params: BLOCK_H, BLOCK_W (output pixels per program), BLOCK_C (channels per program),
num_warps, nhwc_ok, and weight_layout=channels_last: for a [C, 1, KH, KW] weight that is its
contiguous layout, but it marks the tactic as NHWC for the builder (timed with NHWC activations,
starts a channels-last chain). The kernel reads the weight in place (refit-safe: no derived copy).
The kernel source is in dwconv_source."""
from __future__ import annotations

import json

import torch

from ... import dtypes
from ...ops.fused.expr import expr_dtype
from ..device import is_cuda
from ..layer_shapes import is_weight
from ..registry import tactic_family
from . import reference, tactic_dict
from .conv import _epilogue_ok, geometry
from .dwconv_source import DwSignature, dwconv_source
from .launch import compile_source, dtype_name
from .runners import _Runner

CL = torch.channels_last
CONV_TYPES = ("Conv", "fused.ConvAct")
DTYPES = ("float16", "bfloat16", "float32")
MAX_K = 7
STRIDES = (1, 2)
# (BLOCK_H, BLOCK_W, BLOCK_C, num_warps, level): BLOCK_C is capped at C's next power of two and the
# pixel tile grows to keep the elements per program (a 16-channel layer still fills its warps)
SPACE = ((4, 16, 32, 4, 3), (8, 16, 64, 8, 3), (2, 32, 128, 8, 4), (8, 8, 16, 4, 4))


def _np2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def _geometry_ok(attrs, x_shape, w_shape) -> bool:
    """Depthwise (multiplier 1), dilation 1, a small window, strides 1/2, pads >= 0, output > 0."""
    if attrs.get("transpose") or len(x_shape) != 4 or len(w_shape) != 4:
        return False
    c = x_shape[1]
    if not isinstance(c, int) or int(attrs.get("group", 1)) != c or w_shape[0] != c or w_shape[1] != 1:
        return False
    if any(int(d) != 1 for d in attrs.get("dilations") or [1, 1]) or not all(1 <= k <= MAX_K for k in w_shape[2:]):
        return False
    try:
        st, pads, _, (oh, ow) = geometry(attrs, tuple(x_shape), tuple(w_shape))
    except (TypeError, ValueError):
        return False
    return all(s in STRIDES for s in st) and min(pads) >= 0 and oh > 0 and ow > 0


def legal(layer, shapes) -> bool:
    """Layers this tactic covers (at these shapes)."""
    x, w = shapes.inp(0), shapes.inp(1)
    if layer.type not in CONV_TYPES or x is None or not is_weight(w) or x["dtype"] not in DTYPES:
        return False
    if w["dtype"] != x["dtype"] or not all(isinstance(d, int) for d in x["shape"]):
        return False
    if not _geometry_ok(layer.attrs, x["shape"], w["shape"]):
        return False
    b, out = shapes.inp(2), shapes.out(0)
    if b is not None and (b["dtype"] not in DTYPES or list(b["shape"]) != [x["shape"][1]]):
        return False
    return _epilogue_ok(layer.attrs.get("epilogue"), x["dtype"], [shapes.inp(i) for i in range(3, len(shapes.inputs))],
                        out["shape"] if out else None)


def configs(c: int) -> list[tuple]:
    """[((BLOCK_H, BLOCK_W, BLOCK_C, num_warps), level)] fitted to C, duplicates dropped."""
    out, seen = [], set()
    for bh, bw, bc, nw, level in SPACE:
        cc = min(bc, max(8, _np2(c)))
        grow = bc // cc  # fewer channels: more pixels per program (rows first, then columns)
        cfg = (bh * min(grow, 4), bw * max(1, grow // 4), cc, nw)
        if cfg not in seen:
            seen.add(cfg)
            out.append((cfg, level))
    return out


def tactic(cfg, level: int = 3) -> dict:
    """The dwconv tactic dict of one (BLOCK_H, BLOCK_W, BLOCK_C, num_warps)."""
    bh, bw, bc, nw = cfg
    t = tactic_dict("dwconv", BLOCK_H=bh, BLOCK_W=bw, BLOCK_C=bc, num_warps=nw, weight_layout="channels_last",
                    nhwc_ok=True)
    if level > 3:
        t["level"] = level
    return t


def _dest(outs, shape, dtype, device):
    """The caller's output buffer when it is channels-last already, else a fresh NHWC tensor."""
    o = outs[0] if outs else None
    if o is not None and tuple(o.shape) == tuple(shape) and o.dtype == dtype and \
            o.is_contiguous(memory_format=CL):
        return o
    return torch.empty(shape, dtype=dtype, device=device, memory_format=CL)


def _extent(shape, strides) -> int:
    """1 + the largest element offset within one image."""
    return 1 + sum((d - 1) * abs(s) for d, s in zip(shape[1:], strides[1:]))


class DwConvRunner(_Runner):
    """One compiled kernel per input signature; unsupported signatures run the reference."""

    def plan(self, inputs):
        x, w = inputs[0], inputs[1]
        b = inputs[2] if len(inputs) > 2 else None
        extras = list(inputs[3:])
        a = self.attrs
        dt = dtype_name(x)
        if any(e is None for e in extras) or dt not in DTYPES or dtype_name(w) != dt or \
                not _geometry_ok(a, tuple(x.shape), tuple(w.shape)):
            return None
        if b is not None and (dtype_name(b) not in DTYPES or tuple(b.shape) != (x.shape[1],)):
            return None
        st, pads, _, (oh, ow) = geometry(a, tuple(x.shape), tuple(w.shape))
        out_shape = (x.shape[0], x.shape[1], oh, ow)
        epi = a.get("epilogue")
        ext_info = [{"dtype": dtype_name(e), "shape": tuple(e.shape)} for e in extras]
        if not _epilogue_ok(epi, dt, ext_info, out_shape) or \
                max(_extent(x.shape, x.stride()), x.shape[1] * oh * ow) >= 2 ** 31:
            return None  # in-image offsets are 32-bit (the batch offset is 64-bit)
        e_dts = tuple(e["dtype"] for e in ext_info)
        out_dt = expr_dtype(epi, [dt, *e_dts]) if epi else dt
        sig = DwSignature(dt, out_dt, None if b is None else dtype_name(b), e_dts,
                          json.dumps(epi, sort_keys=True) if epi else "", tuple(w.shape[2:]), tuple(st),
                          (pads[0], pads[1]))
        src, consts = dwconv_source(sig)
        return self._launcher(compile_source(src, "tf_dwconv"), sig, out_shape, [v for _, v in consts])

    def _launcher(self, kernel, sig, out_shape, cvals):
        """run(inputs, outs) for one signature: output buffer, launch."""
        p = self.params
        bh, bw, bc = int(p.get("BLOCK_H", 4)), int(p.get("BLOCK_W", 16)), int(p.get("BLOCK_C", 32))
        n, c, oh, ow = out_shape
        n_h, n_w, n_c = -(-oh // bh), -(-ow // bw), -(-c // bc)
        grid = (n * n_h * n_w * n_c,)
        meta = dict(BLOCK_H=bh, BLOCK_W=bw, BLOCK_C=bc, EVEN_C=c % bc == 0, num_warps=int(p.get("num_warps", 4)))
        has_b = sig.bias_dtype is not None
        out_torch = dtypes.to_torch(sig.out_dtype)

        def run(ins, outs=None):
            xi, wi = ins[0], ins[1]
            out = _dest(outs, out_shape, out_torch, xi.device)
            if n == 0 or c == 0:
                return [out]
            ext = list(ins[3:])
            args = [xi, wi] + ([ins[2]] if has_b else []) + ext
            args += [out, c, xi.shape[2], xi.shape[3], oh, ow, n_h, n_w, n_c, *xi.stride()]
            args += [wi.stride(0), wi.stride(2), wi.stride(3)]  # [C, 1, KH, KW]: the dim of 1 is unused
            args += [s for e in ext for s in e.expand(out_shape).stride()]
            kernel[grid](*args, *out.stride(), *cvals, **meta)
            return [out]
        return run


def make_dwconv(layer, attrs, opset, device, params):
    """The dwconv runner of a layer (falls back to the reference for unsupported inputs)."""
    return DwConvRunner(attrs, params, reference(layer, attrs, opset))


@tactic_family("triton", {"dwconv": make_dwconv}, library="TRITON", writes_in_place=True)
def dwconv_candidates(layer, shapes, device) -> list[dict]:
    """dwconv tactics for a legal depthwise conv layer on CUDA (level-3 configs first)."""
    if not is_cuda(device) or not legal(layer, shapes):
        return []
    return [tactic(cfg, level) for cfg, level in configs(shapes.inp(0)["shape"][1])]
