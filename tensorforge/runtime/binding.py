"""Binding helpers of the execution context: symbol environments from input shapes and shape-tensor
values, raw device pointers, host data conversion."""
from __future__ import annotations

import numpy as np
import torch

from .. import dtypes
from ..errors import ShapeError, TensorforgeError
from .shapes import symbols_of


class _DevicePtr:
    """Wraps a raw device pointer so torch.as_tensor can view it (CUDA array interface)."""

    def __init__(self, ptr, shape, dtype: torch.dtype):
        self.__cuda_array_interface__ = {
            "shape": tuple(shape), "typestr": np.dtype(torch.empty((), dtype=dtype).numpy().dtype).str
            if dtype != torch.bfloat16 else "<V2", "data": (int(ptr), False), "version": 3}


def profile_values(plan, index: int, name: str):
    """(min, opt, max) values of shape-tensor input `name` in profile `index` (None if absent)."""
    if not plan.profiles or index >= len(plan.profiles):
        return None
    vals = getattr(plan.profiles[index], "values", None) or {}
    return tuple(tuple(v) for v in vals[name]) if name in vals else None


def _bare(s):
    """The symbol name when a dim expression is a bare symbol, else None."""
    if isinstance(s, int):
        return None
    names = symbols_of(s)
    return s.strip() if len(names) == 1 and s.strip() == next(iter(names)) else None


def bind_symbols(plan, shapes, values=None) -> dict:
    """Symbol environment from input shapes and shape-tensor input values.

    values: {shape input: flat values}; a shape input missing from it takes profile 0's opt
    values (what tactic selection tunes at)."""
    env = {}

    def bind(sym, d, what):
        if sym in env and env[sym] != d:
            raise ShapeError(f"{what} is {d} but '{sym}' is {env[sym]} elsewhere")
        env[sym] = d

    for n in plan.inputs:
        spec = plan.tensors[n]
        if n in shapes:
            for i, (d, s) in enumerate(zip(shapes[n], spec.shape)):
                sym = _bare(s)
                if sym is not None:
                    bind(sym, d, f"input '{n}' dim {i}")
        if spec.sym is None:
            continue
        vals = (values or {}).get(n)
        if vals is None:
            pv = profile_values(plan, 0, n)
            vals = pv[1] if pv else None
        for i, (s, v) in enumerate(zip(spec.sym, vals or ())):
            sym = _bare(s)
            if sym is not None:
                bind(sym, int(v), f"shape tensor input '{n}' value {i}")
    return env


def check_values(plan, profile: int, vals: dict) -> None:
    """Shape-tensor input values: positive and inside the active profile (explicit profiles)."""
    for n, v in vals.items():
        if any(x < 1 for x in v):
            raise ShapeError(f"shape tensor input '{n}': values must be positive, got {list(v)}")
        if plan.profiles and not plan.meta.get("implicit_profile"):
            mn, _, mx = profile_values(plan, profile, n)
            if any(not (a <= x <= b) for x, a, b in zip(v, mn, mx)):
                raise ShapeError(f"shape tensor input '{n}': values {list(v)} are outside optimization "
                                 f"profile {profile} (min {list(mn)}, max {list(mx)})")


def bound_tensor(plan, name, b, shape, device):
    """View a bound tensor or raw pointer (device pointer when `device` is CUDA, else host) as `shape`."""
    dt = dtypes.to_torch(plan.tensors[name].dtype)
    if isinstance(b, int):
        if device is not None:
            return torch.as_tensor(_DevicePtr(b, shape, dt), device=device)
        import ctypes
        n = int(np.prod(shape)) * dtypes.itemsize(plan.tensors[name].dtype)
        buf = (ctypes.c_char * max(n, 1)).from_address(b)
        return torch.frombuffer(buf, dtype=dt, count=int(np.prod(shape))).view(shape)
    if b.dtype != dt:
        raise TensorforgeError(f"tensor '{name}' has dtype {b.dtype}, engine expects {dt}")
    if shape is not None and tuple(b.shape) != tuple(shape):
        if b.numel() == int(np.prod(shape)) and b.is_contiguous():
            return b.view(shape)
        raise ShapeError(f"tensor '{name}' has shape {list(b.shape)}, engine expects {list(shape)}")
    return b


def _as_tensor(name, x, dtype_name):
    want = dtypes.to_torch(dtype_name)
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(
        np.array(x, order="C", copy=False) if np.ndim(x) else np.array(x))
    if t.dtype != want:
        if t.is_floating_point() != want.is_floating_point and want != torch.bool:
            raise TensorforgeError(f"input '{name}' has dtype {t.dtype}, engine expects {want}")
        t = t.to(want)
    return t


def _fmt(shape):
    return "x".join(str(d) for d in shape)


_bind_symbols = bind_symbols  # the name runtime/context.py imports (same package)
