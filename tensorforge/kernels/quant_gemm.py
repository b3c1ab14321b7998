"""What the low-precision GEMM tactics (aten scaled_mm, triton qgemm) read from a fused.QGemm /
fused.QMatMul layer: the GEMM's size, the quantized type, the weight's layout and scales, the
epilogue and the output Q; what a cuBLASLt call leaves to do as one pointwise expression; and the
caches of what the tactics derive once from constant tensors (K-major weights, scales)."""
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


def followup_expr(attrs, n_extras: int, post: bool, bias: bool) -> dict | None:
    """What is left after a GEMM that only scales (and adds the bias), as one pointwise expression
    over [y, w_scale (post), bias (bias), extras...]: y in float32 (times the per-channel weight
    scales when post, plus the bias), the quantized extras dequantized ((x - zp) * s), the layer's
    epilogue, then its output Q (ties to even, saturating). None when nothing is left."""
    from .. import dtypes
    from ..ops.fused.expr import ExprBuilder
    eq, epi, oq = attrs.get("extra_q") or [], attrs.get("epilogue"), attrs.get("out_q")
    if not (post or bias or epi or oq or any(eq[:n_extras])):
        return None
    b = ExprBuilder()
    f32 = {"to": dtypes.to_onnx("float32")}
    y, i = b.op("Cast", [b.input(0)], f32), 1
    if post:
        y, i = b.op("Mul", [y, b.input(i)]), i + 1
    if bias:
        y, i = b.op("Add", [y, b.input(i)]), i + 1
    extras = []
    for j in range(n_extras):
        e, q = b.input(i + j), (eq[j] if j < len(eq) else None)
        if q:
            e = b.op("Cast", [e], f32)
            if q[1]:
                e = b.op("Sub", [e, b.const(float(q[1]), "float32")])
            e = b.op("Mul", [e, b.const(float(q[0]), "float32")])
        extras.append(e)
    out = b.splice(epi, [y] + extras) if epi else y
    if oq:  # QuantizeLinear: round(y / s) + zp saturated, or y / s saturated into e4m3
        out = b.op("Div", [out, b.const(float(oq[0]), "float32")])
        if oq[2] == "float8e4m3fn":
            out = b.op("Clip", [out], {"min": -FP8_MAX, "max": FP8_MAX})
        else:
            info = torch.iinfo(dtypes.to_torch(oq[2]))
            out = b.op("Round", [out])
            if oq[1]:
                out = b.op("Add", [out, b.const(float(oq[1]), "float32")])
            out = b.op("Clip", [out], {"min": float(info.min), "max": float(info.max)})
        out = b.op("Cast", [out], {"to": dtypes.to_onnx(oq[2])})
    return b.build(out)


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
