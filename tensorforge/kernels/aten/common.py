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
    from ...ops.fused_expr import eval_expr as ev
    return ev(expr, inputs, opset)
