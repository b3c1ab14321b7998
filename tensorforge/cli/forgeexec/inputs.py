"""Input data: trtexec-style random values (never all zeros) and raw --loadInputs files."""
from __future__ import annotations

import os

import numpy as np
import torch

from . import api
from .shapes import fmt_dims

DEFAULT_INT_RANGE = (0, 127)
SEED = 0  # deterministic, like std::default_random_engine with its default seed


def _int_range(name: str, ranges: dict) -> tuple[int, int]:
    """Inclusive integer range for an input: 0/1 for masks, zoo spec ranges, else [0, 127]."""
    if "mask" in name.lower():
        return 0, 1
    if name in ranges:
        lo, hi = (int(v) for v in ranges[name])
        return (lo, hi) if hi - lo <= 1 else (lo, hi - 1)  # a (lo, hi) spec is half-open, like a vocab size
    return DEFAULT_INT_RANGE


def random_input(name: str, dtype: str, shape: tuple, ranges: dict, rng: np.random.Generator) -> torch.Tensor:
    """Random values for one input: floats in [-1, 1], integers in their valid range, never all zeros."""
    tdt = api.torch_dtype(dtype)
    n = int(np.prod(shape)) if shape else 1
    if tdt.is_floating_point:
        arr = rng.uniform(-1.0, 1.0, size=n).astype(np.float32)
        if n and not arr.any():
            arr[0] = 0.5
        return torch.from_numpy(arr).reshape(shape).to(tdt)
    lo, hi = (0, 1) if tdt == torch.bool else _int_range(name, ranges)
    arr = rng.integers(lo, hi + 1, size=n, dtype=np.int64)
    if "mask" in name.lower() and n:
        arr.reshape(-1, shape[-1] if shape else 1)[:, 0] = 1  # every row attends to at least one position
    if n and not arr.any():
        arr[0] = hi if hi != 0 else lo
    return torch.from_numpy(arr).reshape(shape).to(tdt)


def load_input(name: str, dtype: str, shape: tuple, path: str) -> torch.Tensor:
    """Read a raw binary file in the engine dtype; its size must match the binding (int32: 2x = int64 data)."""
    tdt = api.torch_dtype(dtype)
    n = int(np.prod(shape)) if shape else 1
    expected = n * torch.empty((), dtype=tdt).element_size()
    if not os.path.isfile(path):
        raise api.error(f"Cannot open input file: {path}")
    size = os.path.getsize(path)
    raw = np.fromfile(path, dtype=np.uint8)
    if size == expected:
        return torch.from_numpy(raw.copy()).view(tdt).reshape(shape)
    if size == 2 * expected and tdt == torch.int32:
        return torch.from_numpy(raw.copy()).view(torch.int64).to(torch.int32).reshape(shape)
    raise api.error(f"Unexpected file size for input file: {path}. Expected {expected} bytes for input '{name}' "
                    f"({dtype}, shape {fmt_dims(shape) or 'scalar'}), got {size} bytes.")


def shape_values_input(name: str, dtype: str, shape: tuple, values: tuple) -> torch.Tensor:
    """Host tensor holding a shape-tensor input's values (its static shape, engine dtype)."""
    n = int(np.prod(shape)) if shape else 1
    if len(values) != n:
        raise api.error(f"Shape tensor input '{name}' needs {n} value(s) (shape {fmt_dims(shape) or 'scalar'}), "
                        f"got {len(values)}: {fmt_dims(values)}")
    return torch.tensor([int(v) for v in values], dtype=api.torch_dtype(dtype)).reshape(shape)


def make_inputs(inputs, shapes: dict, files: dict, ranges: dict, values: dict | None = None) -> dict:
    """Host tensors for every engine input: files where given, shape-tensor values, random otherwise."""
    from tensorforge.builder.memcheck import check_fits, tensor_bytes
    rng = np.random.default_rng(SEED)
    values = values or {}
    out = {}
    total = sum(tensor_bytes(shapes[d.name], d.dtype) for d in inputs)
    check_fits(total, "cpu", "the input buffers at shapes " + ", ".join(
        f"{d.name}:{fmt_dims(shapes[d.name])}" for d in inputs))
    for desc in inputs:
        shape = tuple(shapes[desc.name])
        if desc.name in files:
            out[desc.name] = load_input(desc.name, desc.dtype, shape, files[desc.name])
        elif desc.name in values:
            out[desc.name] = shape_values_input(desc.name, desc.dtype, shape, tuple(values[desc.name]))
        else:
            out[desc.name] = random_input(desc.name, desc.dtype, shape, ranges, rng)
    return out
