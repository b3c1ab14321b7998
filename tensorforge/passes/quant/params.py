"""Reading Q/DQ parameters: per-tensor specs [scale, zero point, dtype] and weight scales."""
from __future__ import annotations

import torch

from ... import dtypes
from ...ops.fused.qdq_expr import F8  # noqa: F401  (the float8 Q/DQ types, one definition)


def _zp_value(node):
    return node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] is not None else None


def qdtype(node) -> str:
    """The quantized element type of a Q's output or a DQ's input."""
    if node.op == "DequantizeLinear":
        return node.inputs[0].dtype
    z = _zp_value(node)
    if z is not None:
        return z.dtype
    od = node.attrs.get("output_dtype", 0)
    return dtypes.from_onnx(od) if od else "uint8"


def spec(node):
    """[scale, zero point, dtype] of a per-tensor Q/DQ with constant parameters, else None."""
    s, z = node.inputs[1], _zp_value(node)
    if s.const is None or s.const.numel() != 1 or node.attrs.get("block_size", 0):
        return None
    if z is not None and (z.const is None or z.const.numel() != 1):
        return None
    if node.op == "QuantizeLinear" and node.attrs.get("saturate", 1) != 1:
        return None
    dt = qdtype(node)
    zp = 0 if z is None or dt in F8 else int(z.const.reshape(-1)[0])
    return [float(s.const.float().reshape(-1)[0]), zp, dt]


def same(a, b) -> bool:
    return a is not None and b is not None and list(a) == list(b)


def weight_scale(dq, axis: int):
    """(float32 scale tensor: scalar or per-channel along `axis`, integer zero point) of a weight
    DQ, or None (blocked, per-axis on another dim, or a per-channel nonzero zero point)."""
    s, z = dq.inputs[1], _zp_value(dq)
    if s.const is None or dq.attrs.get("block_size", 0) or (z is not None and z.const is None):
        return None
    rank = len(dq.inputs[0].shape)
    if s.const.numel() > 1 and dq.attrs.get("axis", 1) % rank != axis:
        return None
    zp = 0
    if z is not None and dq.inputs[0].dtype not in F8:
        zc = z.const.reshape(-1).to(torch.int64)
        if zc.numel() > 1 and bool((zc != zc[0]).any()):
            return None
        zp = int(zc[0])
    return s.const.float().reshape(-1) if s.const.numel() > 1 else s.const.float().reshape(()), zp
