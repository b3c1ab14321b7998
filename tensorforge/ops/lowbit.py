"""Conversions into ONNX's sub-byte and e8m0 types, as onnx's reference (ml_dtypes) does them.

Sub-byte values live unpacked in a storage type (dtypes.STORAGE_ONLY): int4/int2 in int8, uint4/uint2
in uint8, float4e2m1 in float32."""
from __future__ import annotations

import torch

from .. import dtypes

INT_RANGES = {"int4": (-8, 7), "uint4": (0, 15), "int2": (-2, 1), "uint2": (0, 3)}
F4_MAX = 6.0


def to_small_int(x, name):
    """Truncate toward zero; values outside the type's range become 0 (ml_dtypes' conversion)."""
    lo, hi = INT_RANGES[name]
    t = torch.trunc(x.to(torch.float64)) if x.is_floating_point() else x.to(torch.int64)
    ok = (t >= lo) & (t <= hi)
    return torch.where(ok, t, torch.zeros_like(t)).to(dtypes.to_torch(name))


def round_float4(x):
    """Nearest float4e2m1 value (ties to even), saturating at ±6; NaN -> -0 (ml_dtypes)."""
    xf = x.to(torch.float32)
    a = xf.abs()
    step = torch.where(a < 2, 0.5, torch.where(a < 4, 1.0, 2.0))
    r = (torch.round(a / step) * step).clamp(max=F4_MAX)
    y = torch.where(xf < 0, -r, r)
    y = torch.where(torch.signbit(xf) & (r == 0), torch.full_like(r, -0.0), y)
    return torch.where(torch.isnan(xf), torch.full_like(r, -0.0), y)


def to_float8e8m0(x, saturate=1, round_mode="up"):
    """Power-of-two rounding of |x|'s exponent (ONNX to_float8e8m0): 'up', 'down' or 'nearest'."""
    bits = x.to(torch.float32).view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    e = (bits >> 23) & 0xFF
    special = e == 0xFF
    if round_mode == "nearest":
        g, r, s = (bits & 0x400000) > 0, (bits & 0x200000) > 0, (bits & 0x1FFFFF) > 0
        up = g & (r | s | (e > 0)) & ~special
    elif round_mode == "up":
        up = ((bits & 0x7FFFFF) > 0) & ~special
    else:
        up = torch.zeros_like(special)
    if saturate:
        up = up & (e != 0xFE)
    e = torch.where(special, 0xFF, e + up.to(torch.int64))  # NaN and infinities -> NaN (0xFF)
    return e.to(torch.uint8).view(torch.float8_e8m0fnu)


def convert(x, name, saturate=1, round_mode="up"):
    """x converted to ONNX type `name` when it is a sub-byte or e8m0 type, else None."""
    if name in INT_RANGES:
        return to_small_int(x, name)
    if name == "float4e2m1":
        return round_float4(x)
    if name == "float8e8m0":
        return x.clone() if x.dtype == torch.float8_e8m0fnu else to_float8e8m0(x, saturate, round_mode)
    return None
