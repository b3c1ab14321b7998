"""Helpers for aten candidate functions: the layer's concrete shapes and device checks."""
from __future__ import annotations

import torch

FLOATS = ("float32", "float16", "bfloat16")
LOW = ("float16", "bfloat16")


def info(layer):
    """The layer's shape_info ({"inputs": [...], "outputs": [...]}) or None."""
    return getattr(layer, "shape_info", None)


def inp(layer, i):
    """Input i's {"dtype", "shape", "kind"} (None when omitted or unknown)."""
    si = info(layer)
    if si is None or i >= len(si["inputs"]):
        return None
    return si["inputs"][i]


def is_weight(t) -> bool:
    return t is not None and t.get("kind") == "weight"


def is_cuda(device) -> bool:
    return getattr(device, "type", str(device)) == "cuda"


def weight_gemm(layer, dtypes=LOW):
    """(M, N, K) of a MatMul / Gemm (or fused) layer whose B is a 2-D constant weight of A's dtype
    (one of `dtypes`), A of rank >= 2 (exactly 2 with transA = 0 for Gemm); None otherwise."""
    a, b = inp(layer, 0), inp(layer, 1)
    if a is None or not is_weight(b) or len(b["shape"]) != 2 or len(a["shape"]) < 2:
        return None
    if a["dtype"] not in dtypes or b["dtype"] != a["dtype"]:
        return None
    at = layer.attrs
    gemm = layer.type in ("Gemm", "fused.GemmAct")
    if gemm and (len(a["shape"]) != 2 or at.get("transA", 0)):
        return None
    k, n = b["shape"][::-1] if gemm and at.get("transB", 0) else b["shape"]
    if a["shape"][-1] != k:
        return None
    m = 1
    for d in a["shape"][:-1]:
        m *= int(d)
    return m, n, k


def capability(device) -> tuple:
    """(major, minor) of a CUDA device, (0, 0) elsewhere."""
    if not is_cuda(device) or not torch.cuda.is_available():
        return (0, 0)
    return torch.cuda.get_device_capability(device)


def cached(convert):
    """Memoize a per-weight conversion by storage pointer and version (done once, on first call)."""
    memo = {}

    def get(t):
        key = (t.data_ptr(), t._version, tuple(t.shape), t.dtype)
        hit = memo.get(key)
        if hit is None:
            hit = memo[key] = convert(t)
        return hit
    return get


def eval_expr(expr, inputs, opset):
    """Evaluate a fused layer's epilogue expression (imported lazily: fused ops are optional)."""
    from ...ops.fused.expr import eval_expr as ev
    return ev(expr, inputs, opset)
