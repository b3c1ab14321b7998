"""Indexed reads and writes: Gather*, Scatter*, TensorScatter, OneHot."""
from __future__ import annotations

import numpy as np
import torch

from ..errors import ShapeError
from .common import dd_dim, infer_same, known_ints, norm_axis
from .registry import infer, reference, symval


@reference("Gather")
def gather_ref(x, idx, axis=0):
    """index_select after one remainder kernel mapping negative indices into [0, n) (no host sync:
    CUDA-graph capturable; advanced indexing is not)."""
    axis = axis % x.dim()
    n = x.shape[axis]
    idx64 = idx.to(x.device, torch.int64)  # a host-side x (a data-dependent tensor's Shape) with a device index
    flat = torch.remainder(idx64, n) if n > 0 else idx64
    out = torch.index_select(x, axis, flat.reshape(-1))
    return out.reshape(tuple(x.shape[:axis]) + tuple(idx.shape) + tuple(x.shape[axis + 1:]))


@infer("Gather")
def gather_infer(node):
    x, idx = node.inputs[0], node.inputs[1]
    ax = norm_axis(node.attrs.get("axis", 0), len(x.shape))
    return [(x.dtype, tuple(x.shape[:ax]) + tuple(idx.shape) + tuple(x.shape[ax + 1:]))]


@symval("Gather")
def gather_sym(node, x, idx):
    ax = node.attrs.get("axis", 0)
    n = x.shape[ax]
    fixed = np.vectorize(lambda i: int(i) + n if int(i) < 0 else int(i), otypes=[object])(idx) if idx.size else idx
    return [np.take(x, fixed.astype(np.int64), axis=ax)]


# ONNX reduction name -> torch scatter_reduce / index_reduce name ("none" = plain assignment)
_REDUCTIONS = {"add": "sum", "mul": "prod", "max": "amax", "min": "amin"}


def _wrap(idx, n):
    """Negative indices count from the end."""
    idx = idx.to(torch.int64)
    return torch.where(idx < 0, idx + n, idx)


def _reduction(r):
    if r != "none" and r not in _REDUCTIONS:
        raise ShapeError(f"unknown scatter reduction '{r}'")
    return _REDUCTIONS.get(r)


@reference("GatherElements")
def gather_elements_ref(x, indices, axis=0):
    ax = axis % x.dim()
    return torch.gather(x, ax, _wrap(indices, x.shape[ax]))


@infer("GatherElements")
def gather_elements_infer(node):
    x, idx = node.inputs[0], node.inputs[1]
    norm_axis(node.attrs.get("axis", 0), len(x.shape))
    return [(x.dtype, idx.shape)]


@reference("ScatterElements")
def scatter_elements_ref(x, indices, updates, axis=0, reduction="none"):
    ax = axis % x.dim()
    idx = _wrap(indices, x.shape[ax])
    red = _reduction(reduction)
    if red is None:
        return torch.scatter(x, ax, idx, updates)
    return torch.scatter_reduce(x, ax, idx, updates, red, include_self=True)


def _linear_index(idx, dims):
    """Row-major linear index of the last-axis tuples in idx over `dims` (negatives wrapped)."""
    lin = torch.zeros(idx.shape[:-1], dtype=torch.int64, device=idx.device)
    for j, d in enumerate(dims):
        lin = lin * d + _wrap(idx[..., j], d)
    return lin


def _prod(xs):
    n = 1
    for d in xs:
        n *= d
    return n


@reference("GatherND")
def gather_nd_ref(x, indices, batch_dims=0):
    b, k = batch_dims, indices.shape[-1]
    bsz = _prod(x.shape[:b])
    rest = tuple(x.shape[b + k:])
    data = x.reshape((bsz, _prod(x.shape[b:b + k])) + rest)
    lin = _linear_index(indices.reshape(bsz, -1, k), x.shape[b:b + k])  # [B, M]
    rows = torch.arange(bsz, device=x.device).reshape(-1, 1)
    out = data[rows, lin]  # [B, M, *rest]
    return out.reshape(tuple(indices.shape[:-1]) + rest)


@infer("GatherND")
def gather_nd_infer(node):
    x, idx = node.inputs[0], node.inputs[1]
    b = node.attrs.get("batch_dims", 0)
    k = idx.shape[-1]
    if not isinstance(k, int):
        raise ShapeError(f"GatherND '{node.name}': last indices dim must be static")
    if b + k > len(x.shape):
        raise ShapeError(f"GatherND '{node.name}': index depth {k} + batch_dims {b} > data rank")
    return [(x.dtype, tuple(idx.shape[:-1]) + tuple(x.shape[b + k:]))]


@reference("ScatterND")
def scatter_nd_ref(x, indices, updates, reduction="none"):
    k = indices.shape[-1]
    rest = tuple(x.shape[k:])
    out = x.clone().reshape((_prod(x.shape[:k]),) + rest)
    lin = _linear_index(indices.reshape(-1, k), x.shape[:k])
    upd = updates.reshape((-1,) + rest)
    red = _reduction(reduction)
    if red is None:
        out[lin] = upd
    else:
        idx = lin.reshape((-1,) + (1,) * len(rest)).expand(upd.shape)
        out.scatter_reduce_(0, idx, upd, red, include_self=True)
    return out.reshape(x.shape)


@infer("ScatterElements", "ScatterND")
def scatter_infer(node):
    return [(node.inputs[0].dtype, node.inputs[0].shape)]


reference("Scatter")(scatter_elements_ref)
infer("Scatter")(scatter_infer)


@reference("TensorScatter")
def tensor_scatter_ref(past, update, write_indices=None, axis=-2, mode="linear"):
    ax = norm_axis(axis, past.dim())
    b, cap, seq = past.shape[0], past.shape[ax], update.shape[ax]
    start = write_indices.to(torch.int64) if write_indices is not None else \
        torch.zeros(b, dtype=torch.int64, device=past.device)
    pos = start.reshape(-1, 1) + torch.arange(seq, device=past.device).reshape(1, -1)  # (B, seq)
    if mode == "circular":
        pos = pos % cap
    shp = [b] + [1] * (past.dim() - 1)
    shp[ax] = seq
    idx = pos.reshape(shp).expand(update.shape)
    return past.scatter(ax, idx, update)


infer("TensorScatter")(infer_same)


@reference("OneHot", host_inputs=(1,))
def onehot_ref(indices, depth, values, axis=-1):
    d = int(depth.reshape(-1)[0].item())
    idx = indices.to(torch.int64)
    idx = torch.where(idx < 0, idx + d, idx)
    hot = idx.unsqueeze(-1) == torch.arange(d, device=indices.device)
    vals = values.reshape(-1)
    out = torch.where(hot, vals[1], vals[0])
    return out.movedim(-1, axis % out.dim())


@infer("OneHot")
def onehot_infer(node):
    idx = node.inputs[0]
    d = known_ints(node.inputs[1])
    depth = d[0] if d is not None else dd_dim(node)
    rank = len(idx.shape) + 1
    ax = norm_axis(node.attrs.get("axis", -1), rank)
    shp = list(idx.shape)
    shp.insert(ax, depth)
    return [(node.inputs[2].dtype, tuple(shp))]
