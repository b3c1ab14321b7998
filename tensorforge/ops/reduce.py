"""Reductions: Reduce* (axes attribute or input), ArgMax/ArgMin, TopK."""
from __future__ import annotations

import functools

import numpy as np
from ..ir.lazy import sympy
import torch

from ..errors import ShapeError
from ..ir.symbolic import norm
from .common import attr_or_input, dd_dim, has_input, known_ints, norm_axis, scalar_int, tensor_arg
from .registry import infer, reference, symval

_SMALL_FLOATS = (torch.float16, torch.bfloat16)


def _prod(x, dims, keep):
    for d in sorted(dims, reverse=True):
        x = torch.prod(x, d, keepdim=keep)
    return x


def _mean(x, dims, keep):
    if x.is_floating_point():
        return torch.mean(x, dims, keepdim=keep)
    n = 1
    for d in dims:
        n *= x.shape[d]
    return torch.div(torch.sum(x, dims, keepdim=keep), n, rounding_mode="trunc").to(x.dtype)


def _sum(x, dims, keep):
    return torch.sum(x, dims, keepdim=keep, dtype=x.dtype)


def _extreme(fn, x, dims, keep, is_min):
    """amax / amin; over an empty set, the identity (-inf / +inf, the integer limits, False / True)."""
    if all(x.shape[d] for d in dims):
        return fn(x, dims, keepdim=keep)
    shape = [1 if d in dims else n for d, n in enumerate(x.shape) if keep or d not in dims]
    if x.dtype == torch.bool:
        fill = is_min
    elif x.is_floating_point():
        fill = float("inf") if is_min else float("-inf")
    else:
        fill = torch.iinfo(x.dtype).max if is_min else torch.iinfo(x.dtype).min
    return torch.full(shape, fill, dtype=x.dtype, device=x.device)


# op -> (pre-map, reduction, post-map); the maps are applied even for a no-op reduction (as ORT).
REDUCE_FNS = {
    "ReduceMean": (None, _mean, None),
    "ReduceSum": (None, _sum, None),
    "ReduceMax": (None, lambda x, d, k: _extreme(torch.amax, x, d, k, False), None),
    "ReduceMin": (None, lambda x, d, k: _extreme(torch.amin, x, d, k, True), None),
    "ReduceProd": (None, _prod, None),
    "ReduceL1": (torch.abs, _sum, None),
    "ReduceL2": (lambda x: x * x, _sum, torch.sqrt),
    "ReduceLogSum": (None, _sum, torch.log),
    "ReduceLogSumExp": (None, lambda x, d, k: torch.logsumexp(x, d, keepdim=k), None),
    "ReduceSumSquare": (lambda x: x * x, _sum, None),
}


def _axes_list(axes, rank):
    """Normalized sorted axes, or None for 'all' / 'none' (decided by the caller)."""
    if axes is None:
        return None
    axes = tensor_arg(axes)
    return sorted({norm_axis(a, rank) for a in axes}) if axes else None


def _make_ref(op):
    pre, red, post = REDUCE_FNS[op]

    def ref(x, axes=None, keepdims=1, noop_with_empty_axes=0):
        dims = _axes_list(axes, x.dim())
        if dims is None:
            dims = [] if noop_with_empty_axes else list(range(x.dim()))
        y = x.float() if x.dtype in _SMALL_FLOATS and op != "ReduceMax" and op != "ReduceMin" else x
        y = pre(y) if pre is not None else y
        y = red(y, dims, bool(keepdims)) if dims else y
        y = post(y) if post is not None else y
        return y.to(x.dtype)
    ref.__name__ = f"{op.lower()}_ref"
    return ref


for _op in REDUCE_FNS:
    reference(_op, host_inputs=(1,))(_make_ref(_op))


def reduce_dims(node):
    """The normalized reduced axes of a Reduce node ([] for a no-op reduction)."""
    rank = len(node.inputs[0].shape)
    axes = attr_or_input(node, "axes", 1)
    if axes is None and has_input(node, 1):
        raise ShapeError(f"{node.op} '{node.name}': axes are data-dependent (not supported)")
    if not axes:
        return [] if node.attrs.get("noop_with_empty_axes", 0) else list(range(rank))
    if any(not isinstance(a, int) for a in axes):
        raise ShapeError(f"{node.op} '{node.name}': symbolic axes are not supported")
    return sorted({norm_axis(a, rank) for a in axes})


def _reduced_shape(shape, dims, keep):
    if keep:
        return tuple(1 if i in dims else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in dims)


@infer(*REDUCE_FNS)
def reduce_infer(node):
    x = node.inputs[0]
    return [(x.dtype, _reduced_shape(x.shape, reduce_dims(node), node.attrs.get("keepdims", 1)))]


def _obj_reduce(arr, dims, keep, fn):
    """Reduce an object ndarray over `dims` with fn(list) -> value."""
    if not dims:
        return arr
    kept = [i for i in range(arr.ndim) if i not in dims]
    moved = np.transpose(arr, kept + list(dims)).reshape([arr.shape[i] for i in kept] + [-1])
    flat = moved.reshape(-1, moved.shape[-1]) if moved.ndim > 1 else moved.reshape(1, -1)
    out = np.empty(flat.shape[0], dtype=object)
    out[:] = [norm(fn(list(row))) for row in flat]
    shp = [1 if i in dims else s for i, s in enumerate(arr.shape)] if keep else \
        [arr.shape[i] for i in kept]
    return out.reshape(shp)


_SYM_FNS = {
    "ReduceSum": lambda xs: sum(xs, 0),
    "ReduceProd": lambda xs: functools.reduce(lambda a, b: a * b, xs, 1),
    "ReduceMax": lambda xs: functools.reduce(sympy.Max, xs) if xs else 0,
    "ReduceMin": lambda xs: functools.reduce(sympy.Min, xs) if xs else 0,
}


@symval(*_SYM_FNS)
def reduce_sym(node, x, *_rest):
    """Shape arithmetic: e.g. ReduceProd(Shape(x)) = numel."""
    if node.inputs[0].dtype not in ("int64", "int32"):
        return None
    return [_obj_reduce(x, reduce_dims(node), node.attrs.get("keepdims", 1), _SYM_FNS[node.op])]


def _arg(fn):
    def ref(x, axis=0, keepdims=1, select_last_index=0):
        ax = axis % x.dim() if x.dim() else 0
        if select_last_index:
            r = fn(torch.flip(x, (ax,)), ax, keepdim=bool(keepdims))
            return (x.shape[ax] - 1 - r).to(torch.int64)
        return fn(x, ax, keepdim=bool(keepdims)).to(torch.int64)
    return ref


reference("ArgMax")(_arg(torch.argmax))
reference("ArgMin")(_arg(torch.argmin))


@infer("ArgMax", "ArgMin")
def arg_infer(node):
    shp = node.inputs[0].shape
    ax = norm_axis(node.attrs.get("axis", 0), len(shp))
    return [("int64", _reduced_shape(shp, [ax], node.attrs.get("keepdims", 1)))]


@reference("TopK", host_inputs=(1,))
def topk_ref(x, k, axis=-1, largest=1, sorted=1):
    """A stable sort: equal values keep the lower index first (ONNX), which torch.topk does not promise."""
    ax = axis % x.dim()
    keys = x.to(torch.int64) if x.dtype in (torch.uint16, torch.uint32, torch.uint64) else x
    i = torch.sort(keys, dim=ax, descending=bool(largest), stable=True)[1].narrow(ax, 0, scalar_int(k))
    return torch.gather(keys, ax, i).to(x.dtype), i


@infer("TopK")
def topk_infer(node):
    x = node.inputs[0]
    ax = norm_axis(node.attrs.get("axis", -1), len(x.shape))
    k = known_ints(node.inputs[1])
    shp = list(x.shape)
    shp[ax] = k[0] if k is not None else dd_dim(node)
    return [(x.dtype, tuple(shp)), ("int64", tuple(shp))]
