"""Shape-level ops: Shape, Size, Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Expand."""
from __future__ import annotations

import numpy as np
from ..ir.lazy import sympy
import torch

from ..errors import ShapeError
from ..ir.symbolic import norm, numel
from .common import attr_or_input, dd_dims, has_input, known_ints, norm_axis, obj_array, tensor_arg, value_len
from .registry import infer, reference, symval


def _shape_range(rank, start=0, end=None):
    start = max(0, min(rank, start + rank if start < 0 else start))
    end = rank if end is None else end
    end = max(0, min(rank, end + rank if end < 0 else end))
    return start, max(start, end)


@reference("Shape")
def shape_ref(x, start=0, end=None):
    s, e = _shape_range(x.dim(), start, end)
    return torch.tensor(list(x.shape)[s:e], dtype=torch.int64)


@infer("Shape")
def shape_infer(node):
    s, e = _shape_range(len(node.inputs[0].shape), node.attrs.get("start", 0), node.attrs.get("end"))
    return [("int64", (e - s,))]


@symval("Shape", always=True)
def shape_sym(node, _x=None):
    shp = node.inputs[0].shape
    s, e = _shape_range(len(shp), node.attrs.get("start", 0), node.attrs.get("end"))
    return [obj_array(shp[s:e])]


@reference("Size")
def size_ref(x):
    return torch.tensor(x.numel(), dtype=torch.int64)


infer("Size")(lambda node: [("int64", ())])
symval("Size", always=True)(lambda node, _x=None: [obj_array([numel(node.inputs[0].shape)], ())])


# the Reshape family (views)
def reshape_dims(in_shape, target, allowzero=0):
    """Resolve ONNX Reshape target dims (0 = copy, -1 = infer) against the input shape."""
    out = []
    for i, d in enumerate(target):
        if isinstance(d, int) and d == 0 and not allowzero:
            out.append(in_shape[i])
        else:
            out.append(d)
    neg = [i for i, d in enumerate(out) if isinstance(d, int) and d == -1]
    if len(neg) > 1:
        raise ShapeError("Reshape target has more than one -1")
    if neg:
        known = numel([d for d in out if not (isinstance(d, int) and d == -1)])
        total = numel(in_shape)
        if isinstance(known, int) and isinstance(total, int):
            if known == 0 or total % known:
                raise ShapeError(f"cannot reshape {list(in_shape)} to {target}")
            out[neg[0]] = total // known
        else:
            out[neg[0]] = norm(sympy.sympify(total) / known)
    return tuple(norm(d) for d in out)


@reference("Reshape", host_inputs=(1,), view=True)
def reshape_ref(x, shape, allowzero=0):
    return x.reshape(reshape_dims(tuple(x.shape), tensor_arg(shape), allowzero))


@infer("Reshape")
def reshape_infer(node):
    tgt = known_ints(node.inputs[1])
    if tgt is None:  # computed at run time: the output is sized then
        return [(node.inputs[0].dtype, dd_dims(node, value_len(node, 1)))]
    return [(node.inputs[0].dtype, reshape_dims(node.inputs[0].shape, tgt, node.attrs.get("allowzero", 0)))]


@symval("Reshape")
def reshape_sym(node, x, _shape=None):
    return [x.reshape(tuple(int(d) for d in reshape_infer(node)[0][1]))]


@reference("Flatten", view=True)
def flatten_ref(x, axis=1):
    a = axis % x.dim() if x.dim() and axis < 0 else axis
    return x.reshape(int(np.prod(x.shape[:a], dtype=np.int64)), int(np.prod(x.shape[a:], dtype=np.int64)))


@infer("Flatten")
def flatten_infer(node):
    shp = node.inputs[0].shape
    axis = node.attrs.get("axis", 1)
    a = axis + len(shp) if axis < 0 else axis
    return [(node.inputs[0].dtype, (numel(shp[:a]), numel(shp[a:])))]


def _squeeze_axes(node, shape):
    axes = attr_or_input(node, "axes", 1)
    if axes is None and has_input(node, 1):  # not "squeeze all ones": the axes are just unknown
        raise ShapeError(f"Squeeze '{node.name}': axes are data-dependent (not supported)")
    if axes is None:
        return [i for i, d in enumerate(shape) if isinstance(d, int) and d == 1]
    return sorted(norm_axis(a, len(shape)) for a in axes)


@reference("Squeeze", host_inputs=(1,), view=True)
def squeeze_ref(x, axes=None, axes_in=None):
    axes = tensor_arg(axes) if axes is not None else None
    if axes is None:
        return x.squeeze()
    return x.reshape([d for i, d in enumerate(x.shape) if i not in {a % x.dim() for a in axes}])


@infer("Squeeze")
def squeeze_infer(node):
    shp = node.inputs[0].shape
    axes = set(_squeeze_axes(node, shp))
    return [(node.inputs[0].dtype, tuple(d for i, d in enumerate(shp) if i not in axes))]


@symval("Squeeze")
def squeeze_sym(node, x, _axes=None):
    return [x.reshape(tuple(int(d) for d in squeeze_infer(node)[0][1]))]


def _unsqueeze_shape(shape, axes):
    rank = len(shape) + len(axes)
    axes = sorted(norm_axis(a, rank) for a in axes)
    out, it = [], iter(shape)
    for i in range(rank):
        out.append(1 if i in axes else next(it))
    return tuple(out)


@reference("Unsqueeze", host_inputs=(1,), view=True)
def unsqueeze_ref(x, axes=None):
    return x.reshape(_unsqueeze_shape(tuple(x.shape), tensor_arg(axes)))


@infer("Unsqueeze")
def unsqueeze_infer(node):
    return [(node.inputs[0].dtype, _unsqueeze_shape(node.inputs[0].shape, attr_or_input(node, "axes", 1)))]


@symval("Unsqueeze")
def unsqueeze_sym(node, x, _axes=None):
    return [x.reshape(tuple(int(d) for d in unsqueeze_infer(node)[0][1]))]


@reference("Transpose")
def transpose_ref(x, perm=None):
    perm = perm if perm is not None else list(range(x.dim()))[::-1]
    return x.permute(*perm)


@infer("Transpose")
def transpose_infer(node):
    shp = node.inputs[0].shape
    perm = node.attrs.get("perm", list(range(len(shp)))[::-1])
    return [(node.inputs[0].dtype, tuple(shp[p] for p in perm))]


@reference("Expand", host_inputs=(1,))
def expand_ref(x, shape):
    tgt = tensor_arg(shape)
    rank = max(len(tgt), x.dim())
    xs = [1] * (rank - x.dim()) + list(x.shape)
    tgt = [1] * (rank - len(tgt)) + tgt
    out = [a if b == 1 else b for a, b in zip(xs, tgt)]
    return x.reshape(xs).expand(out)


@infer("Expand")
def expand_infer(node):
    from ..ir.symbolic import broadcast
    tgt = known_ints(node.inputs[1])
    if tgt is None:  # computed at run time: a dim of x other than 1 stays, the others are sized then
        x = node.inputs[0].shape
        n = value_len(node, 1)
        rank = max(n, len(x))
        xs = (1,) * (rank - len(x)) + tuple(x)
        dd = dd_dims(node, rank)
        return [(node.inputs[0].dtype, tuple(d if isinstance(d, int) and d != 1 else e for d, e in zip(xs, dd)))]
    return [(node.inputs[0].dtype, broadcast(node.inputs[0].shape, tuple(tgt)))]


@symval("Expand")
def expand_sym(node, x, shape):
    dims = [int(d) for d in expand_infer(node)[0][1]]
    return [np.broadcast_to(x, dims).copy()]
