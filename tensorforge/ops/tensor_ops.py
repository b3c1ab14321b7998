"""Tensor ops: Split, Tile, Pad, DepthToSpace, SpaceToDepth."""
from __future__ import annotations

import numpy as np
from ..ir.lazy import sympy
import torch

from ..errors import ShapeError
from ..ir.symbolic import norm
from .common import attr_or_input, has_input, known_ints, norm_axis, tensor_arg
from .registry import infer, reference, symval


# ---- Split -------------------------------------------------------------------------------------
def _even_sizes(dim, n):
    """Sizes of n chunks: ceil(dim / n) each, the last one smaller (opset 18 rule)."""
    if isinstance(dim, int):
        chunk = -(-dim // n)
        return [chunk] * (n - 1) + [dim - chunk * (n - 1)]
    chunk = norm(sympy.ceiling(dim / n))
    return [chunk] * (n - 1) + [norm(dim - chunk * (n - 1))]


def split_sizes(node, dim):
    """Chunk sizes of a Split node along its axis (dims may be symbolic)."""
    split = attr_or_input(node, "split", 1)
    if split is None and has_input(node, 1):
        raise ShapeError(f"Split '{node.name}': split sizes are data-dependent (not supported)")
    if split:
        return list(split)
    n = node.attrs.get("num_outputs")
    if n is None:
        # before opset 18 the output count gives the number of equal chunks; the reference only
        # sees attributes, so record it in the opset-18 spelling
        n = node.attrs["num_outputs"] = len(node.outputs)
    return _even_sizes(dim, n)


@reference("Split", host_inputs=(1,))
def split_ref(x, split=None, axis=0, num_outputs=None):
    ax = axis % x.dim()
    sizes = tensor_arg(split) if split is not None and len(split) else None
    if sizes is None:
        sizes = _even_sizes(x.shape[ax], num_outputs)
    return tuple(torch.split(x, sizes, dim=ax))


@infer("Split")
def split_infer(node):
    x = node.inputs[0]
    ax = norm_axis(node.attrs.get("axis", 0), len(x.shape))
    out = []
    for s in split_sizes(node, x.shape[ax]):
        shp = list(x.shape)
        shp[ax] = s
        out.append((x.dtype, tuple(shp)))
    return out


@symval("Split")
def split_sym(node, x, _split=None):
    ax = node.attrs.get("axis", 0) % x.ndim
    sizes = split_sizes(node, x.shape[ax])
    if not all(isinstance(s, int) for s in sizes):
        return None
    return list(np.split(x, np.cumsum(sizes)[:-1], axis=ax))


# ---- Tile --------------------------------------------------------------------------------------
@reference("Tile", host_inputs=(1,))
def tile_ref(x, repeats):
    return x.repeat(*tensor_arg(repeats)) if x.dim() else x.clone()


@infer("Tile")
def tile_infer(node):
    x = node.inputs[0]
    reps = known_ints(node.inputs[1])
    if reps is None:
        raise ShapeError(f"Tile '{node.name}': repeats are data-dependent (not supported)")
    if len(reps) != len(x.shape):
        raise ShapeError(f"Tile '{node.name}': {len(reps)} repeats for rank {len(x.shape)}")
    return [(x.dtype, tuple(norm(d * r) for d, r in zip(x.shape, reps)))]


@symval("Tile")
def tile_sym(node, x, _reps=None):
    reps = known_ints(node.inputs[1])
    return [np.tile(x, reps)] if all(isinstance(r, int) for r in reps) else None


# ---- Pad ---------------------------------------------------------------------------------------
def _pad_index(n, before, after, mode, device):
    """Source index along one axis for reflect/edge/wrap padding."""
    i = torch.arange(-before, n + after, device=device)
    if mode == "edge":
        return i.clamp(0, n - 1)
    if mode == "wrap":
        return torch.remainder(i, n)
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    m = torch.remainder(i, period)
    return torch.where(m < n, m, period - m)


def _pad_axis(x, ax, before, after, mode, value):
    if before < 0:
        x = x.narrow(ax, -before, x.shape[ax] + before)
        before = 0
    if after < 0:
        x = x.narrow(ax, 0, x.shape[ax] + after)
        after = 0
    if before == 0 and after == 0:
        return x
    if mode == "constant":
        def block(k):
            shp = list(x.shape)
            shp[ax] = k
            return value.expand(shp)
        return torch.cat(([block(before)] if before else []) + [x] + ([block(after)] if after else []), ax)
    return x.index_select(ax, _pad_index(x.shape[ax], before, after, mode, x.device))


@reference("Pad", host_inputs=(1, 3))
def pad_ref(x, pads=None, constant_value=None, axes=None, mode="constant", value=0.0):
    pads = tensor_arg(pads)
    axes = [a % x.dim() for a in tensor_arg(axes)] if axes is not None else list(range(x.dim()))
    if constant_value is not None and constant_value.numel():
        fill = constant_value.reshape(()).to(device=x.device, dtype=x.dtype)
    else:
        fill = torch.full((), value, dtype=x.dtype, device=x.device)  # no host copy (graph capture)
    n = len(axes)
    for j, ax in enumerate(axes):
        x = _pad_axis(x, ax, pads[j], pads[j + n], mode, fill)
    return x


@infer("Pad")
def pad_infer(node):
    x = node.inputs[0]
    rank = len(x.shape)
    pads = attr_or_input(node, "pads", 1)
    if pads is None:
        raise ShapeError(f"Pad '{node.name}': pads are data-dependent (not supported)")
    axes = known_ints(node.inputs[3]) if has_input(node, 3) else list(range(rank))
    if axes is None:
        raise ShapeError(f"Pad '{node.name}': axes are data-dependent (not supported)")
    if len(pads) != 2 * len(axes):
        raise ShapeError(f"Pad '{node.name}': {len(pads)} pads for {len(axes)} axes")
    shp = list(x.shape)
    for j, a in enumerate(axes):
        ax = norm_axis(a, rank)
        shp[ax] = norm(shp[ax] + pads[j] + pads[j + len(axes)])
    return [(x.dtype, tuple(shp))]


# ---- DepthToSpace / SpaceToDepth ---------------------------------------------------------------
def _div(d, k):
    if isinstance(d, int):
        if d % k:
            raise ShapeError(f"dim {d} is not divisible by {k}")
        return d // k
    return norm(d / k)


@reference("DepthToSpace")
def depth_to_space_ref(x, blocksize, mode="DCR"):
    n, c, h, w = x.shape
    b = blocksize
    if mode == "CRD":
        y = x.reshape(n, c // (b * b), b, b, h, w).permute(0, 1, 4, 2, 5, 3)
    else:
        y = x.reshape(n, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2)
    return y.reshape(n, c // (b * b), h * b, w * b)


@infer("DepthToSpace")
def depth_to_space_infer(node):
    n, c, h, w = node.inputs[0].shape
    b = node.attrs["blocksize"]
    return [(node.inputs[0].dtype, (n, _div(c, b * b), norm(h * b), norm(w * b)))]


@reference("SpaceToDepth")
def space_to_depth_ref(x, blocksize):
    n, c, h, w = x.shape
    b = blocksize
    y = x.reshape(n, c, h // b, b, w // b, b).permute(0, 3, 5, 1, 2, 4)
    return y.reshape(n, c * b * b, h // b, w // b)


@infer("SpaceToDepth")
def space_to_depth_infer(node):
    n, c, h, w = node.inputs[0].shape
    b = node.attrs["blocksize"]
    return [(node.inputs[0].dtype, (n, norm(c * b * b), _div(h, b), _div(w, b)))]
