"""Input data for the CLIs: shape strings and random (never zero) inputs in valid ranges."""
from __future__ import annotations

import numpy as np

from .. import dtypes
from ..errors import ShapeError, TensorforgeError


def parse_shapes(text: str) -> dict[str, tuple]:
    """'a:1x3x224x224,b:1x128' -> {a: (1,3,224,224), b: (1,128)}; the last ':' ends the name."""
    out = {}
    if not text:
        return out
    for item in text.split(","):
        if ":" not in item:
            raise ShapeError(f"bad shape '{item}': expected name:AxBxC")
        name, dims = item.rsplit(":", 1)
        name = name.strip("'")
        try:
            out[name] = tuple(int(d) for d in dims.split("x")) if dims not in ("", "scalar") else ()
        except ValueError:
            raise ShapeError(f"bad shape '{item}': dims must be integers joined by 'x'") from None
        if any(d < 0 for d in out[name]):
            raise ShapeError(f"bad shape '{item}': negative dim")
    return out


def value_range(name: str, dtype: str, model_spec: str | None):
    """(lo, hi) for random data: zoo specs first, then masks 0/1, ints [0,127], floats [-1,1]."""
    if model_spec and str(model_spec).startswith("zoo:"):
        try:
            from .. import zoo
            spec = zoo.input_specs(str(model_spec)[4:]).get(name)
            if spec is not None:
                return spec[2]
        except (TensorforgeError, AttributeError, KeyError):
            pass
    if dtype == "bool" or "mask" in name.lower():
        return (0, 2) if dtype != "bool" else (0, 2)
    if dtypes.is_int(dtype):
        return (0, 128)
    return (-1.0, 1.0)


def random_input(name, dtype, shape, rng, model_spec=None) -> np.ndarray:
    """One random array; masks get mostly ones (never an all-zero row)."""
    lo, hi = value_range(name, dtype, model_spec)
    if dtype == "bool":
        return rng.random(shape) > 0.5
    if dtypes.is_int(dtype):
        if "mask" in name.lower() and hi <= 2:
            a = np.ones(shape, dtype=dtypes.to_numpy(dtype))
            if len(shape) >= 2 and shape[-1] > 1:
                a[..., -max(1, shape[-1] // 8):] = rng.integers(0, 2, size=a[..., -max(1, shape[-1] // 8):].shape)
            return a
        return rng.integers(int(lo), int(hi), size=shape).astype(dtypes.to_numpy(dtype))
    arr = rng.uniform(lo, hi, size=shape)
    if dtype in ("bfloat16",) or dtype.startswith("float8"):
        return arr.astype(np.float32)
    return arr.astype(dtypes.to_numpy(dtype))


def make_inputs(descs, shapes: dict, seed: int = 1, model_spec=None) -> dict[str, np.ndarray]:
    """Random inputs for engine/model input descriptors (name, dtype, shape with -1 dynamic)."""
    rng = np.random.default_rng(seed)
    out = {}
    for d in descs:
        shp = shapes.get(d.name)
        if shp is None:
            shp = tuple(1 if s < 0 else s for s in d.shape)
        elif len(shp) != len(d.shape):
            raise ShapeError(f"input '{d.name}': shape {list(shp)} has the wrong rank (expected {len(d.shape)})")
        out[d.name] = random_input(d.name, d.dtype, tuple(shp), rng, model_spec)
    unknown = set(shapes) - {d.name for d in descs}
    if unknown:
        raise ShapeError(f"--shapes names unknown input(s): {', '.join(sorted(unknown))}")
    return out
