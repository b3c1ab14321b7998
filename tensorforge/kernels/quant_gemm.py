"""What the low-precision GEMM tactics (aten scaled_mm, triton qgemm) read from a fused.QGemm /
fused.QMatMul layer: the GEMM's size, the quantized type, the weight's layout and scales, the
epilogue and the output Q; and the float follow-up both share for what their kernels do not fuse
(the epilogue after a cuBLASLt call, and dequantizing / requantizing in torch)."""
from __future__ import annotations

import math

import torch

from .layer_shapes import is_weight

TYPES = ("fused.QGemm", "fused.QMatMul")
QTYPES = ("float8e4m3fn", "int8")          # operand types of the kernels (symmetric: zero points 0)
OUT_Q = ("float8e4m3fn", "int8", "uint8")  # output Q types the kernels requantize into
FP8_MAX = 448.0


def problem(layer, shapes) -> dict | None:
    """{m, n, k, qtype, kmajor, per_channel, bias, alpha, out_dtype, extras} when the layer is a
    symmetric QGemm / QMatMul with a constant 2-D weight of the input's type, else None."""
    if layer.type not in TYPES or shapes is None:
        return None
    at = layer.attrs
    x, w, ws = shapes.inp(0), shapes.inp(1), shapes.inp(3)
    if x is None or ws is None or not is_weight(w) or len(w["shape"]) != 2 or len(x["shape"]) < 2:
        return None
    if x["dtype"] not in QTYPES or w["dtype"] != x["dtype"]:
        return None
    if int(at.get("x_zp", 0) or 0) or int(at.get("w_zp", 0) or 0):
        return None
    gemm = layer.type == "fused.QGemm"
    if gemm and (len(x["shape"]) != 2 or at.get("transA", 0)):
        return None
    kmajor = bool(gemm and at.get("transB", 0))  # weight stored [N, K]
    k, n = (w["shape"][1], w["shape"][0]) if kmajor else tuple(w["shape"])
    if int(x["shape"][-1]) != int(k):
        return None
    n_scale = math.prod(int(d) for d in ws["shape"])
    if n_scale not in (1, int(n)):
        return None
    out = shapes.out(0)
    out_q = at.get("out_q")
    if out is None or (out_q and out_q[2] not in OUT_Q):
        return None
    bias = shapes.inp(2)
    if bias is not None and (math.prod(int(d) for d in bias["shape"]) != int(n) or
                             not bias["dtype"].startswith(("float", "bfloat"))):
        return None
    extras = [shapes.inp(i) for i in range(4, len(layer.inputs))]
    if any(e is None for e in extras) or (extras and not at.get("epilogue")):
        return None
    return {"m": math.prod(int(d) for d in x["shape"][:-1]), "n": int(n), "k": int(k), "qtype": x["dtype"],
            "kmajor": kmajor, "per_channel": n_scale > 1, "bias": bias is not None,
            "alpha": float(at.get("alpha", 1.0)) if gemm else 1.0, "out_dtype": out["dtype"],
            "extras": extras}


def dequant(t, spec):
    """An extra epilogue input dequantized with [scale, zero point] (float tensors pass through)."""
    if spec is None or (t.dtype.is_floating_point and t.dtype.itemsize > 1):
        return t
    d = t.float()
    if spec[1] and not t.dtype.is_floating_point:
        d = d - float(spec[1])
    return d * float(spec[0])


def requant(y, spec):
    """y quantized with [scale, zero point, dtype] as QuantizeLinear (saturating, ties to even; CUDA
    may divide by the reciprocal: a tie can move by one step, which the tactic check allows)."""
    from .. import dtypes
    dt = dtypes.to_torch(spec[2])
    q = y.float() / float(spec[0])  # a host scalar: nothing copied to the device (CUDA-graph safe)
    if dt.is_floating_point:
        return q.clamp(-FP8_MAX, FP8_MAX).to(dt)
    q = torch.round(q)
    if spec[1]:
        q = q + float(spec[1])
    info = torch.iinfo(dt)
    return q.clamp(info.min, info.max).to(dt)


def cached(cache: dict, t, tag: str, make):
    """make(t), computed once per constant tensor t and kept in `cache` with t itself (so that its
    memory cannot pass to another tensor meanwhile) and t's version (refit writes weights in place);
    never stored while a CUDA graph is being captured (what is made there is redone per replay)."""
    key = (tag, t.data_ptr(), tuple(t.shape), t.dtype, t.device)
    hit = cache.get(key)
    if hit is not None and hit[1] == t._version:
        return hit[2]
    v = make(t)
    if not capturing(t.device):
        cache[key] = (t, t._version, v)
    return v


def capturing(device) -> bool:
    """Whether a CUDA graph is being captured on the current stream of a CUDA device."""
    return getattr(device, "type", str(device)) == "cuda" and torch.cuda.is_current_stream_capturing()


def weight_kn(w, kmajor: bool, cache: dict):
    """The weight as a [K, N] view whose K is contiguous (column-major), as cuBLASLt's FP8 "TN" rule
    and Triton's K-major dot operands want: a transposed view of an [N, K] weight, else a transposed
    copy made once per weight (weights are constants)."""
    if kmajor:
        return w.t()
    if w.stride(0) == 1:  # already K-contiguous
        return w
    return cached(cache, w, "kn", lambda t: t.t().contiguous().t())
