"""Triton implicit-GEMM convolution (tactic conv_igemm) for Conv / fused.ConvAct layers: 2-D,
group 1, float16 / bfloat16 data, a constant weight, Cin and Cout multiples of 8 (the 3-channel
stem stays on cuDNN); any strides, (asymmetric) pads, dilations, auto_pad. Bias and the layer's
epilogue run inside the kernel; the result is stored channels-last.

Tactic params: BLOCK_M/N/K, num_warps, num_stages, weight_layout=channels_last (the build lays
the weight out as [Cout, KH, KW, Cin] once; an NCHW weight is converted once and cached) and
nhwc_ok (inputs and outputs may be NHWC activations of a layout chain). The kernel source is in
conv_source; triton itself is imported only when a kernel is compiled."""
from __future__ import annotations

import json

import torch

from ... import dtypes
from ...ops.fused.expr import expr_dtype
from ...ops.spatial import resolve_pads
from ..device import is_cuda
from ..layer_shapes import is_weight
from ..registry import tactic_family
from ..weight_cache import cached
from . import reference, tactic_dict
from .codegen import supported
from .conv_source import ConvSignature, conv_source
from .launch import compile_source, dtype_name
from .runners import _Runner

CL = torch.channels_last
CONV_TYPES = ("Conv", "fused.ConvAct")
DTYPES = ("float16", "bfloat16")
RUN_DTYPES = DTYPES + ("float32",)  # the runner also takes fp32 (IEEE dot: tests, interpreter)
GROUP_M = 8
# (BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages): default search, then the extended one
LEVEL3 = ((128, 128, 64, 8, 3), (128, 64, 64, 4, 4), (64, 128, 32, 4, 4), (64, 64, 64, 4, 3))
LEVEL4 = ((128, 256, 64, 8, 3), (256, 128, 64, 8, 3), (64, 256, 64, 8, 3), (128, 128, 32, 4, 4),
          (128, 128, 64, 4, 4), (128, 64, 32, 4, 5), (64, 64, 32, 4, 5), (64, 32, 64, 4, 4),
          (32, 64, 64, 4, 4))


def _pow2(n: int, lo: int = 16) -> int:
    return max(lo, 1 << max(0, int(n) - 1).bit_length())


def geometry(attrs, x_shape, w_shape):
    """(strides, [pt, pl, pb, pr], dilations, (OH, OW)) of a 2-D conv at concrete shapes."""
    st = list(attrs.get("strides") or [1, 1])
    dil = list(attrs.get("dilations") or [1, 1])
    k = list(w_shape[2:])
    pads = resolve_pads(attrs.get("auto_pad", "NOTSET"), list(x_shape[2:]), k, st, dil, attrs.get("pads"))
    out = tuple((x_shape[2 + i] + pads[i] + pads[i + 2] - (k[i] - 1) * dil[i] - 1) // st[i] + 1
                for i in range(2))
    return st, pads, dil, out


def _epilogue_ok(epi, dt, extras, out_shape) -> bool:
    """The expression has a Triton translation and its extras broadcast to the conv output."""
    if not epi:
        return not extras
    if any(e is None for e in extras) or not supported(epi, [dt] + [e["dtype"] for e in extras]):
        return False
    try:
        return out_shape is None or all(
            len(e["shape"]) <= 4 and tuple(torch.broadcast_shapes(tuple(e["shape"]), tuple(out_shape))) ==
            tuple(out_shape) for e in extras)
    except RuntimeError:
        return False


def legal(layer, shapes) -> bool:
    """Layers this tactic covers (at these shapes)."""
    a = layer.attrs
    x, w = shapes.inp(0), shapes.inp(1)
    if layer.type not in CONV_TYPES or a.get("transpose") or x is None or not is_weight(w):
        return False
    if len(x["shape"]) != 4 or len(w["shape"]) != 4 or x["dtype"] not in DTYPES or w["dtype"] != x["dtype"]:
        return False
    cin, cout = w["shape"][1], w["shape"][0]
    if int(a.get("group", 1)) != 1 or x["shape"][1] != cin or cin % 8 or cout % 8:
        return False
    out = shapes.out(0)
    return _epilogue_ok(a.get("epilogue"), x["dtype"], [shapes.inp(i) for i in range(3, len(shapes.inputs))],
                        out["shape"] if out else None)


def configs(cin: int, cout: int, m: int, spaces=None, min_k: int = 16) -> list[tuple]:
    """[(config, level)] of `spaces` ((level, configs) pairs; default LEVEL3, LEVEL4) fitted to the GEMM
    sizes (min_k <= BLOCK_K <= Cin rounded up, no tiles far past Cout or M)."""
    out, seen = [], set()
    for level, space in spaces or ((3, LEVEL3), (4, LEVEL4)):
        for bm, bn, bk, nw, ns in space:
            bk = max(min_k, min(bk, _pow2(cin)))
            cfg = (bm, bn, bk, nw, ns)
            if bn > max(64, _pow2(cout)) or bm > max(64, _pow2(m)) or cfg in seen:
                continue
            seen.add(cfg)
            out.append((cfg, level))
    return out


def tactic(cfg, level: int = 3, family: str = "conv_igemm") -> dict:
    """The tactic dict of one (BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages) of an implicit-GEMM
    conv family (conv_igemm, or qconv: the same kernel generator's quantized mode)."""
    bm, bn, bk, nw, ns = cfg
    t = tactic_dict(family, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, num_warps=nw, num_stages=ns,
                weight_layout="channels_last", nhwc_ok=True)
    if level > 3:
        t["level"] = level
    return t


def _to_cl(t):
    return t.contiguous(memory_format=CL)


class ConvRunner(_Runner):
    """One compiled kernel per input signature; unsupported signatures run the reference."""

    def __init__(self, attrs, params, fallback):
        super().__init__(attrs, params, fallback)
        self.wcl = cached(_to_cl)

    def plan(self, inputs):
        x, w = inputs[0], inputs[1]
        b = inputs[2] if len(inputs) > 2 else None
        extras = list(inputs[3:])
        a = self.attrs
        if any(e is None for e in extras):
            return None
        dt = dtype_name(x)
        if (a.get("transpose") or int(a.get("group", 1)) != 1 or x.dim() != 4 or w.dim() != 4
                or dt not in RUN_DTYPES or dtype_name(w) != dt or x.shape[1] != w.shape[1]):
            return None
        st, pads, dil, (oh, ow) = geometry(a, tuple(x.shape), tuple(w.shape))
        out_shape = (x.shape[0], w.shape[0], oh, ow)
        epi = a.get("epilogue")
        ext_info = [{"dtype": dtype_name(e), "shape": tuple(e.shape)} for e in extras]
        if min(oh, ow) <= 0 or _int32_overflow(x, out_shape) or not _epilogue_ok(epi, dt, ext_info, out_shape):
            return None
        e_dts = tuple(e["dtype"] for e in ext_info)
        out_dt = expr_dtype(epi, [dt, *e_dts]) if epi else dt
        sig = ConvSignature(dt, out_dt, None if b is None else dtype_name(b), e_dts,
                            json.dumps(epi, sort_keys=True) if epi else "", tuple(w.shape[2:]), tuple(st),
                            (pads[0], pads[1]), tuple(dil))
        src, consts = conv_source(sig)
        kernel = compile_source(src, "tf_conv_igemm")
        return self._launcher(kernel, sig, x, w, out_shape, [v for _, v in consts])

    def _launcher(self, kernel, sig, x, w, out_shape, cvals, extra_from=3, scales=None, scalars=()):
        """run(inputs, outs) for one signature: layouts, output buffer, launch (extras are inputs
        extra_from.., input `scales` is passed after them, `scalars` before the constants: QConv)."""
        p = self.params
        bm, bn, bk = int(p.get("BLOCK_M", 64)), int(p.get("BLOCK_N", 64)), int(p.get("BLOCK_K", 32))
        n, cin, h, wd = x.shape
        cout, oh, ow = out_shape[1], out_shape[2], out_shape[3]
        m = n * oh * ow
        grid = (triton_cdiv(m, bm) * triton_cdiv(cout, bn),)
        meta = dict(BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, GROUP_M=GROUP_M, EVEN_K=cin % bk == 0,
                    num_warps=int(p.get("num_warps", 4)), num_stages=int(p.get("num_stages", 3)))
        x_to_cl = x.is_contiguous() and not x.is_contiguous(memory_format=CL)  # NCHW: one NHWC copy
        w_to_cl = not w.is_contiguous(memory_format=CL)
        has_b = sig.bias_dtype is not None
        out_torch = dtypes.to_torch(sig.out_dtype)

        def run(ins, outs=None):
            xi, wi = ins[0], ins[1]
            xi = _to_cl(xi) if x_to_cl else xi
            wi = self.wcl(wi) if w_to_cl else wi
            out = _dest(outs, out_shape, out_torch, xi.device)
            if m == 0:
                return [out]
            ext = list(ins[extra_from:])
            args = [xi, wi] + ([ins[2]] if has_b else []) + ext + ([] if scales is None else [ins[scales].reshape(-1)])
            args += [out, m, h, wd, oh, ow, cin, cout, *xi.stride(), *wi.stride()]
            args += [s for e in ext for s in e.expand(out_shape).stride()]
            kernel[grid](*args, *out.stride(), *scalars, *cvals, **meta)
            return [out]
        return run


def _int32_overflow(x, out_shape) -> bool:
    """Row indices and per-image offsets are 32-bit in the kernel (the batch offset is 64-bit)."""
    n, c, h, w = out_shape
    return max(n * h * w, c * h * w, x.shape[1] * x.shape[2] * x.shape[3]) >= 2 ** 31


def triton_cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _dest(outs, shape, dtype, device):
    """The caller's output buffer when it is channels-last already, else a fresh NHWC tensor."""
    o = outs[0] if outs else None
    if o is not None and tuple(o.shape) == tuple(shape) and o.dtype == dtype and \
            o.is_contiguous(memory_format=CL):
        return o
    return torch.empty(shape, dtype=dtype, device=device, memory_format=CL)


def make_conv(layer, attrs, opset, device, params):
    """The conv_igemm runner of a layer (falls back to the reference for unsupported inputs)."""
    return ConvRunner(attrs, params, reference(layer, attrs, opset))


@tactic_family("triton", {"conv_igemm": make_conv}, library="TRITON", writes_in_place=True)
def conv_candidates(layer, shapes, device) -> list[dict]:
    """conv_igemm tactics for a legal conv layer on CUDA (level-3 configs first)."""
    if not is_cuda(device) or not legal(layer, shapes):
        return []
    x, w = shapes.inp(0), shapes.inp(1)
    _, _, _, (oh, ow) = geometry(layer.attrs, x["shape"], w["shape"])
    m = x["shape"][0] * oh * ow
    return [tactic(cfg, level) for cfg, level in configs(w["shape"][1], w["shape"][0], m)]
