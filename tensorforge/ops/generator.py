"""Tensor generators: ConstantOfShape, Range, EyeLike, random ops."""
from __future__ import annotations

import numpy as np
from ..ir.lazy import sympy
import torch

from .. import dtypes
from ..errors import ShapeError
from ..ir.symbolic import norm
from .common import known_ints, obj_array, tensor_arg
from .registry import infer, reference, symval


@reference("ConstantOfShape", host_inputs=(0,))
def constant_of_shape_ref(shape, value=None, _device=None):
    v = value if value is not None else torch.zeros(1, dtype=torch.float32)  # attribute: host tensor
    return torch.full(tensor_arg(shape), v.reshape(-1)[0].item(), dtype=v.dtype, device=_device)


@infer("ConstantOfShape")
def constant_of_shape_infer(node):
    v = node.attrs.get("value")
    dt = dtypes.from_torch(v.dtype) if v is not None else "float32"
    shp = known_ints(node.inputs[0])
    if shp is None:
        raise ShapeError(f"ConstantOfShape '{node.name}': shape is data-dependent (not supported)")
    return [(dt, tuple(shp))]


@symval("ConstantOfShape")
def constant_of_shape_sym(node, shape):
    v = node.attrs.get("value")
    if v is not None and v.is_floating_point():
        return None
    fill = int(v.reshape(-1)[0]) if v is not None else 0
    dims = [int(d) for d in shape.reshape(-1)] if all(isinstance(d, int) for d in shape.reshape(-1)) else None
    if dims is None or int(np.prod(dims)) > 4096:
        return None
    return [np.full(dims, fill, dtype=object)]


@reference("Range", host_inputs=(0, 1, 2))
def range_ref(start, limit, delta, _device=None):
    return torch.arange(start.item(), limit.item(), delta.item(), dtype=start.dtype, device=_device)


@infer("Range")
def range_infer(node):
    vals = [known_ints(v) if v.dtype in ("int64", "int32") else (
        v.const.reshape(-1).tolist() if v.const is not None else None) for v in node.inputs]
    if any(x is None for x in vals):
        raise ShapeError(f"Range '{node.name}': bounds are data-dependent (not supported)")
    s, lim, d = (x[0] for x in vals)
    n = sympy.Max(sympy.ceiling((sympy.sympify(lim) - s) / d), 0)
    return [(node.inputs[0].dtype, (norm(n),))]


@symval("Range")
def range_sym(node, start, limit, delta):
    vals = [x.reshape(-1)[0] for x in (start, limit, delta)]
    if node.inputs[0].dtype not in ("int64", "int32") or not all(isinstance(v, int) for v in vals):
        return None
    return [obj_array(range(*vals))]


@reference("EyeLike")
def eyelike_ref(x, dtype=None, k=0):
    dt = dtypes.to_torch(dtypes.from_onnx(dtype)) if dtype is not None else x.dtype
    i = torch.arange(x.shape[0], device=x.device).reshape(-1, 1)
    j = torch.arange(x.shape[1], device=x.device).reshape(1, -1)
    return (j - i == k).to(dt)


@infer("EyeLike")
def eyelike_infer(node):
    dt = node.attrs.get("dtype")
    return [(dtypes.from_onnx(dt) if dt is not None else node.inputs[0].dtype, node.inputs[0].shape)]


# random generators: outputs are random, never constant-folded, never compared
def _rand_dtype(dtype, like=None):
    if dtype is not None:
        return dtypes.to_torch(dtypes.from_onnx(dtype))
    return like.dtype if like is not None else torch.float32


@reference("RandomUniform", "RandomUniformLike", deterministic=False)
def random_uniform_ref(like=None, dtype=None, high=1.0, low=0.0, seed=None, shape=None, _device=None):
    shp = list(shape) if like is None else list(like.shape)
    dev = like.device if like is not None else _device
    return (torch.rand(shp, dtype=torch.float64, device=dev) * (high - low) + low).to(_rand_dtype(dtype, like))


@reference("RandomNormal", "RandomNormalLike", deterministic=False)
def random_normal_ref(like=None, dtype=None, mean=0.0, scale=1.0, seed=None, shape=None, _device=None):
    shp = list(shape) if like is None else list(like.shape)
    dev = like.device if like is not None else _device
    return (torch.randn(shp, dtype=torch.float64, device=dev) * scale + mean).to(_rand_dtype(dtype, like))


@reference("Bernoulli", deterministic=False)
def bernoulli_ref(x, dtype=None, seed=None):
    return torch.bernoulli(x.to(torch.float64)).to(_rand_dtype(dtype, x))


@infer("RandomUniform", "RandomNormal")
def random_infer(node):
    return [(dtypes.from_onnx(node.attrs.get("dtype", 1)), tuple(node.attrs["shape"]))]


@infer("RandomUniformLike", "RandomNormalLike", "Bernoulli")
def random_like_infer(node):
    x = node.inputs[0]
    dt = node.attrs.get("dtype")
    return [(dtypes.from_onnx(dt) if dt is not None else x.dtype, x.shape)]
