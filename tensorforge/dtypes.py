"""One table of element types: ONNX enum <-> name <-> torch dtype <-> numpy dtype."""
from __future__ import annotations

import numpy as np
import torch

from .errors import TensorforgeError

# name: (onnx TensorProto enum, torch dtype, numpy dtype or None)
_TABLE = {
    "float32": (1, torch.float32, np.float32),
    "uint8": (2, torch.uint8, np.uint8),
    "int8": (3, torch.int8, np.int8),
    "uint16": (4, torch.uint16, np.uint16),
    "int16": (5, torch.int16, np.int16),
    "int32": (6, torch.int32, np.int32),
    "int64": (7, torch.int64, np.int64),
    "bool": (9, torch.bool, np.bool_),
    "float16": (10, torch.float16, np.float16),
    "float64": (11, torch.float64, np.float64),
    "uint32": (12, torch.uint32, np.uint32),
    "uint64": (13, torch.uint64, np.uint64),
    "bfloat16": (16, torch.bfloat16, None),
    "float8e4m3fn": (17, torch.float8_e4m3fn, None),
    "float8e4m3fnuz": (18, torch.float8_e4m3fnuz, None),
    "float8e5m2": (19, torch.float8_e5m2, None),
    "float8e5m2fnuz": (20, torch.float8_e5m2fnuz, None),
    "uint4": (21, torch.uint8, None),
    "int4": (22, torch.int8, None),
    "float4e2m1": (23, torch.float32, None),
    "float8e8m0": (24, torch.float8_e8m0fnu, None),
    "uint2": (25, torch.uint8, None),
    "int2": (26, torch.int8, None),
}
# Sub-byte types live unpacked, one value per element, in a wider storage type (exact values);
# a tensor's torch dtype is then its storage's, so from_torch never names them.
STORAGE_ONLY = {"uint4", "int4", "uint2", "int2", "float4e2m1"}
SUB_BYTE_BITS = {"uint4": 4, "int4": 4, "float4e2m1": 4, "uint2": 2, "int2": 2}
# numpy (ml_dtypes) names of the types numpy lacks: ONNX's numpy_helper and reference outputs use them
ML_NAMES = {"bfloat16": "bfloat16", "float8e4m3fn": "float8_e4m3fn", "float8e4m3fnuz": "float8_e4m3fnuz",
            "float8e5m2": "float8_e5m2", "float8e5m2fnuz": "float8_e5m2fnuz", "float8e8m0": "float8_e8m0fnu",
            "uint4": "uint4", "int4": "int4", "float4e2m1": "float4_e2m1fn", "uint2": "uint2", "int2": "int2"}
_BY_ONNX = {v[0]: k for k, v in _TABLE.items()}
_BY_TORCH = {v[1]: k for k, v in _TABLE.items() if k not in STORAGE_ONLY}
_ALIASES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "half": "float16",
            "float": "float32", "double": "float64", "fp64": "float64", "fp8": "float8e4m3fn"}

NAMES = frozenset(_TABLE)  # every tensor element type an engine may hold
FLOAT_TYPES = {"float16", "float32", "float64", "bfloat16", "float8e4m3fn", "float8e4m3fnuz",
               "float8e5m2", "float8e5m2fnuz"}


def canonical(name: str) -> str:
    """Normalize a dtype name ('fp16' -> 'float16'); raise on unknown names."""
    n = _ALIASES.get(name, name)
    if n not in _TABLE:
        raise TensorforgeError(f"unsupported data type '{name}'")
    return n


def from_onnx(enum: int) -> str:
    if enum == 8:
        raise TensorforgeError("string tensors (ONNX type 8) are not supported: engines hold numeric "
                               "tensors only (strings can never run on the GPU); process strings outside")
    if enum not in _BY_ONNX:
        raise TensorforgeError(f"unsupported ONNX data type {enum}")
    return _BY_ONNX[enum]


def to_onnx(name: str) -> int:
    return _TABLE[canonical(name)][0]


def to_torch(name: str) -> torch.dtype:
    return _TABLE[canonical(name)][1]


def from_torch(dt: torch.dtype) -> str:
    if dt not in _BY_TORCH:
        raise TensorforgeError(f"unsupported torch dtype {dt}")
    return _BY_TORCH[dt]


def packed_size(name: str, n: int) -> int | None:
    """What an ONNX TensorProto stores for n elements of a sub-byte type: ceil(n * bits / 8) bytes of
    raw_data or int32_data values (packed); None for other types."""
    bits = SUB_BYTE_BITS.get(name)
    return None if bits is None else (n * bits + 7) // 8


def const_dtype(t: torch.Tensor, declared: str | None = None) -> str:
    """The type of a constant: its declared sub-byte type when `t` is that type's storage, else t's."""
    if declared in STORAGE_ONLY and _TABLE[declared][1] == t.dtype:
        return declared
    return from_torch(t.dtype)


def to_numpy(name: str):
    np_dt = _TABLE[canonical(name)][2]
    if np_dt is None:
        raise TensorforgeError(f"data type '{name}' has no numpy equivalent")
    return np.dtype(np_dt)


def from_numpy(dt) -> str:
    dt = np.dtype(dt)
    for k, v in _TABLE.items():
        if v[2] is not None and np.dtype(v[2]) == dt:
            return k
    raise TensorforgeError(f"unsupported numpy dtype {dt}")


def itemsize(name: str) -> int:
    return torch.empty((), dtype=to_torch(name)).element_size()


def is_float(name: str) -> bool:
    return name in FLOAT_TYPES


def short(name: str) -> str:
    """The short name of the float types precision uses in names ('float16' -> 'fp16'), else name."""
    return {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32"}.get(name, name)


def ml_to_torch(arr, name: str) -> torch.Tensor:
    """An ml_dtypes numpy array of an ML_NAMES type as a torch tensor (bits for 8/16-bit floats,
    values in the storage type for sub-byte types)."""
    if name in STORAGE_ONLY:
        return torch.from_numpy(np.array(arr, order="C").astype(_storage_np(name)))
    bits = np.array(arr, order="C").view(np.uint16 if name == "bfloat16" else np.uint8)
    return torch.from_numpy(bits.copy()).view(to_torch(name))


def _storage_np(name: str):
    """numpy dtype of a sub-byte type's storage."""
    return {torch.int8: np.int8, torch.uint8: np.uint8, torch.float32: np.float32}[to_torch(name)]


def torch_to_ml(t: torch.Tensor, name: str):
    """A CPU torch tensor holding an ML_NAMES type as the ml_dtypes numpy array."""
    import ml_dtypes
    ml = getattr(ml_dtypes, ML_NAMES[name])
    if name in STORAGE_ONLY:
        return t.numpy().astype(ml)
    return t.contiguous().view(torch.uint16 if name == "bfloat16" else torch.uint8).numpy().view(ml)
