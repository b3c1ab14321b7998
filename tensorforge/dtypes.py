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
}
_BY_ONNX = {v[0]: k for k, v in _TABLE.items()}
_BY_TORCH = {v[1]: k for k, v in _TABLE.items()}
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
