"""Data selection: Slice, Compress, NonZero, Unique."""
from __future__ import annotations

from ..ir.lazy import sympy
import torch

from ..errors import ShapeError
from ..ir.symbolic import norm, numel
from .common import attr_or_input, dd_dim, dd_dims, has_input, norm_axis, tensor_arg, value_len
from .registry import infer, reference, symval


def _slice_params(node, rank):
    starts = attr_or_input(node, "starts", 1)
    ends = attr_or_input(node, "ends", 2)
    axes = attr_or_input(node, "axes", 3, list(range(len(starts))))
    steps = attr_or_input(node, "steps", 4, [1] * len(starts))
    return starts, ends, [norm_axis(a, rank) for a in axes], steps


def _clamp_slice(dim, start, end, step):
    """Output length and normalized start for one sliced axis (ints only)."""
    s = slice(start, end, step).indices(dim)
    return len(range(*s)), s


def _slice_dim(dim, start, end, step):
    if isinstance(dim, int):
        return _clamp_slice(dim, start, end, step)[0]
    big = 2 ** 62
    if step > 0 and 0 <= start and end >= big // 2:
        return norm(dim - start) if start else dim
    if step > 0 and 0 <= start <= end and not (end >= big // 2):
        return norm(sympy.Max(0, sympy.Min(dim, end) - start))
    if step > 0 and start < 0 and end >= big // 2:
        return -start  # assumes dim >= -start
    if step > 0 and start >= 0 and end < 0:
        return norm(sympy.Max(0, dim + end - start))
    raise ShapeError(f"slice {start}:{end}:{step} on symbolic dim {dim} is not supported")


def _slice_dim_symbolic_bounds(node, dim, start, end, step):
    """Length of [start:end] with symbolic (positive) bounds, e.g. position_ids[:, :seq_len]; step 1."""
    if step != 1 or any(isinstance(v, int) and v < 0 for v in (start, end)):
        raise ShapeError(f"Slice '{node.name}': symbolic slice bounds need step 1 and non-negative bounds")
    return norm(sympy.Max(0, sympy.Min(dim, end) - sympy.Min(dim, start)))


@reference("Slice", host_inputs=(1, 2, 3, 4))
def slice_ref(x, starts=None, ends=None, axes=None, steps=None):
    starts, ends = tensor_arg(starts), tensor_arg(ends)
    axes = tensor_arg(axes) if axes is not None else list(range(len(starts)))
    steps = tensor_arg(steps) if steps is not None else [1] * len(starts)
    idx = [slice(None)] * x.dim()
    for s, e, a, st in zip(starts, ends, axes, steps):
        idx[a % x.dim()] = slice(*slice(s, e, st).indices(x.shape[a % x.dim()]))
    if all(st > 0 for st in steps):
        return x[tuple(idx)]
    out = x
    for a, sl in enumerate(idx):  # negative steps: torch has no negative-step slicing
        if sl.step is not None and sl.step < 0:
            r = torch.arange(sl.start, sl.stop, sl.step, device=x.device) if sl.stop >= 0 else \
                torch.arange(sl.start, -1, sl.step, device=x.device)
            out = out.index_select(a, r)
        elif sl != slice(None):
            out = out[(slice(None),) * a + (sl,)]
    return out


@infer("Slice")
def slice_infer(node):
    shp = list(node.inputs[0].shape)
    if any(attr_or_input(node, a, i) is None for a, i in (("starts", 1), ("ends", 2))) or \
            any(has_input(node, i) and attr_or_input(node, a, i) is None for a, i in (("axes", 3), ("steps", 4))):
        return [(node.inputs[0].dtype, _dd_slice(node, shp))]
    starts, ends, axes, steps = _slice_params(node, len(shp))
    for s, e, a, st in zip(starts, ends, axes, steps):
        if isinstance(s, sympy.Basic) or isinstance(e, sympy.Basic):
            shp[a] = _slice_dim_symbolic_bounds(node, shp[a], s, e, st)
        else:
            shp[a] = _slice_dim(shp[a], s, e, st)
    return [(node.inputs[0].dtype, tuple(shp))]


def _dd_slice(node, shp):
    """Bounds computed at run time: the sliced axes (every axis when the axes are unknown too) are
    sized then."""
    axes = attr_or_input(node, "axes", 3)
    dd = dd_dims(node, len(shp))
    if axes is None and has_input(node, 3):
        return dd
    axes = {norm_axis(a, len(shp)) for a in (axes if axes is not None else range(value_len(node, 1)))}
    return tuple(dd[i] if i in axes else d for i, d in enumerate(shp))


@symval("Slice")
def slice_sym(node, x, *_):
    starts, ends, axes, steps = _slice_params(node, x.ndim)
    if any(isinstance(v, sympy.Basic) for v in list(starts) + list(ends)):
        return None  # symbolic bounds: the contents stay unknown
    idx = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        idx[a] = slice(*slice(s, e, st).indices(x.shape[a]))
    return [x[tuple(idx)]]


@reference("Compress", data_dependent=True)
def compress_ref(x, condition, axis=None):
    src = x.reshape(-1) if axis is None else x
    ax = 0 if axis is None else axis % x.dim()
    cond = condition.reshape(-1)[: src.shape[ax]].to(torch.bool)
    return src.index_select(ax, torch.nonzero(cond).reshape(-1))


@infer("Compress")
def compress_infer(node):
    x, c = node.inputs[0], node.inputs[1]
    axis = node.attrs.get("axis")
    cond = c.const.reshape(-1) if c.const is not None else None
    if axis is None:
        total = numel(x.shape)
        known = cond is not None and isinstance(total, int)
        return [(x.dtype, (int(torch.count_nonzero(cond[:total])) if known else dd_dim(node),))]
    ax = norm_axis(axis, len(x.shape))
    shp = list(x.shape)
    known = cond is not None and isinstance(shp[ax], int)
    shp[ax] = int(torch.count_nonzero(cond[:shp[ax]])) if known else dd_dim(node)
    return [(x.dtype, tuple(shp))]


@reference("NonZero", data_dependent=True)
def nonzero_ref(x):
    return torch.nonzero(x.reshape(1) if x.dim() == 0 else x).t().contiguous()


@infer("NonZero")
def nonzero_infer(node):
    x = node.inputs[0]
    n = int(torch.count_nonzero(x.const)) if x.const is not None else dd_dim(node)
    return [("int64", (max(len(x.shape), 1), n))]


@reference("Unique", data_dependent=True)
def unique_ref(x, axis=None, sorted=1):  # noqa: A002 - ONNX name
    src = x.reshape(-1) if axis is None else x
    dim = 0 if axis is None else norm_axis(axis, x.dim())
    y, inv, cnt = torch.unique(src, sorted=True, return_inverse=True, return_counts=True, dim=dim)
    pos = torch.arange(src.shape[dim], device=x.device)
    first = torch.full((y.shape[dim],), src.shape[dim], dtype=torch.int64, device=x.device)
    first = first.scatter_reduce(0, inv, pos, reduce="amin")
    if not sorted:  # order of first occurrence
        order = torch.argsort(first)
        rank = torch.empty_like(order)
        rank[order] = torch.arange(order.numel(), device=x.device)
        y, first, cnt, inv = y.index_select(dim, order), first[order], cnt[order], rank[inv]
    return y, first, inv.reshape(-1), cnt


@infer("Unique")
def unique_infer(node):
    x = node.inputs[0]
    u = dd_dim(node)
    ax = node.attrs.get("axis")
    if ax is None:
        shp, n_in = (u,), numel(x.shape)
    else:
        a = norm_axis(ax, len(x.shape))
        shp = tuple(u if i == a else d for i, d in enumerate(x.shape))
        n_in = x.shape[a]
    return [(x.dtype, shp), ("int64", (u,)), ("int64", (n_in,)), ("int64", (u,))]
