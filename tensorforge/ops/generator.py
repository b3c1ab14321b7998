"""Tensor generators: ConstantOfShape, Range, EyeLike, random ops."""
from __future__ import annotations

import math

import numpy as np
from ..ir.lazy import sympy
import torch

from .. import dtypes
from ..errors import ShapeError
from ..ir.symbolic import norm
from .common import dd_dim, dd_dims, known_ints, obj_array, tensor_arg, value_len
from .registry import infer, reference, symval
from .symvalue import as_number, concrete, exact


@reference("ConstantOfShape", host_inputs=(0,))
def constant_of_shape_ref(shape, value=None, _device=None):
    v = value if value is not None else torch.zeros(1, dtype=torch.float32)  # attribute: host tensor
    return torch.full(tensor_arg(shape), v.reshape(-1)[0].item(), dtype=v.dtype, device=_device)


@infer("ConstantOfShape")
def constant_of_shape_infer(node):
    v = node.attrs.get("value")
    dt = dtypes.from_torch(v.dtype) if v is not None else "float32"
    shp = known_ints(node.inputs[0])
    if shp is None:  # computed at run time: the output is sized then
        return [(dt, dd_dims(node, value_len(node, 0)))]
    return [(dt, tuple(shp))]


@symval("ConstantOfShape")
def constant_of_shape_sym(node, shape):
    v = node.attrs.get("value")
    fill = exact(v.reshape(-1)[0].item()) if v is not None else 0
    dims = [int(d) for d in shape.reshape(-1)] if all(isinstance(d, int) for d in shape.reshape(-1)) else None
    if dims is None or int(np.prod(dims)) > 4096:
        return None
    return [np.full(dims, fill, dtype=object)]


@reference("Range", host_inputs=(0, 1, 2))
def range_ref(start, limit, delta, _device=None):
    s, lim, d = start.item(), limit.item(), delta.item()
    if (lim - s) * d <= 0:  # ONNX: empty (torch.arange refuses bounds against the step's sign)
        return torch.empty(0, dtype=start.dtype, device=_device)
    return torch.arange(s, lim, d, dtype=start.dtype, device=_device)


def _scalar(v):
    """The known (constant or symbolic) value of a scalar input, or None."""
    if v.const is not None and v.const.numel() == 1:
        return exact(v.const.reshape(-1)[0].item())
    if v.sym is not None and v.sym.size == 1:
        return exact(v.sym.reshape(-1)[0])
    return None


@infer("Range")
def range_infer(node):
    """Length max(ceil((limit - start) / delta), 0); a bound known only at run time sizes the
    output then (data-dependent)."""
    vals = [_scalar(v) for v in node.inputs]
    dt = node.inputs[0].dtype
    if all(x is not None and concrete(x) for x in vals):  # as torch.arange counts: in double
        s, lim, d = (float(as_number(x, dt)) for x in vals)
        return [(dt, (max(math.ceil((lim - s) / d), 0),))]
    if any(x is None or isinstance(x, float) for x in vals):  # run-time bounds, or inexact floats
        return [(dt, (dd_dim(node),))]
    s, lim, d = vals
    n = sympy.Max(sympy.ceiling((sympy.sympify(lim) - s) / d), 0)
    return [(dt, (norm(n),))]


@symval("Range")
def range_sym(node, start, limit, delta):
    vals = [exact(x.reshape(-1)[0]) for x in (start, limit, delta)]
    if not all(concrete(v) for v in vals):
        return None
    if node.inputs[0].dtype in ("int64", "int32"):
        return [obj_array(range(*(int(v) for v in vals)))]
    dt = dtypes.to_torch(node.inputs[0].dtype)
    out = torch.arange(*(float(v) for v in vals), dtype=torch.float64).to(dt).tolist()
    return [obj_array([exact(x) for x in out])] if len(out) <= 4096 else None


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
