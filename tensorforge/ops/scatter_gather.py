"""Indexed reads and writes: GatherElements, GatherND, ScatterElements, ScatterND."""
from __future__ import annotations

import torch

from ..errors import ShapeError
from .common import norm_axis
from .registry import infer, reference

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


# ---- GatherElements / ScatterElements -----------------------------------------------------------
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


# ---- GatherND / ScatterND ------------------------------------------------------------------------
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
