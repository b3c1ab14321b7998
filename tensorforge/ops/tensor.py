"""Tensor ops: Identity, Dropout, Cast, CastLike, BitCast, Concat, Split, Tile, Pad, Trilu, ReverseSequence."""
from __future__ import annotations

import numpy as np
from ..ir.lazy import sympy
import torch

from .. import dtypes
from ..errors import ShapeError
from ..ir.symbolic import norm
from .common import (attr_or_input, dd_dims, has_input, infer_same, known_ints, norm_axis, scalar_int, tensor_arg,
                     value_len)
from .lowbit import convert
from .registry import infer, reference, symval
from .symvalue import FLOATS, INTS, concrete, elementwise, to_float, to_int


@reference("Identity", view=True)
def identity_ref(x, *rest, **_attrs):
    return x


@reference("Dropout", host_inputs=(1, 2), deterministic=False)
def dropout_ref(x, ratio=None, training_mode=None, seed=None, is_test=None):
    """(output, mask): identity with an all-true mask unless training_mode with ratio > 0."""
    r = float(ratio.reshape(-1)[0]) if isinstance(ratio, torch.Tensor) else (0.5 if ratio is None else ratio)
    train = training_mode is not None and bool(training_mode.reshape(-1)[0])
    if not train or r == 0:
        return x, torch.ones(x.shape, dtype=torch.bool, device=x.device)
    keep = torch.rand(x.shape, device=x.device) >= r
    return x * keep / (1 - r), keep


@infer("Identity")
def identity_infer(node):
    return infer_same(node)


@infer("Dropout")
def dropout_infer(node):
    outs = [(node.inputs[0].dtype, node.inputs[0].shape)]
    if len(node.outputs) > 1:
        outs.append(("bool", node.inputs[0].shape))
    return outs


symval("Identity", "Dropout")(lambda node, x, *r: [x])


def _cast(x, dt, saturate=1):
    if dt in (torch.float8_e4m3fn, torch.float8_e4m3fnuz, torch.float8_e5m2, torch.float8_e5m2fnuz) \
            and x.dtype != dt:
        from .quant import to_float8  # ONNX saturate/overflow rules, not torch's
        return to_float8(x, dt, saturate)
    return x.to(dt)


@reference("Cast")
def cast_ref(x, to, saturate=1, round_mode="up"):
    y = convert(x, dtypes.from_onnx(to), saturate, round_mode)  # sub-byte / e8m0 targets
    return y if y is not None else _cast(x, dtypes.to_torch(dtypes.from_onnx(to)), saturate)


infer("Cast")(lambda node: [(dtypes.from_onnx(node.attrs["to"]), node.inputs[0].shape)])


@symval("Cast")
def cast_sym(node, x):
    """Shape values survive int -> float -> int casts while exact (see symvalue)."""
    to = dtypes.from_onnx(node.attrs["to"])
    if to in INTS:
        return [elementwise(to_int, x)] if node.inputs[0].dtype != to else [x]
    if to in FLOATS:
        return [elementwise(lambda e: to_float(e, to), x)]
    if to == "bool":
        return [elementwise(lambda e: bool(e) if concrete(e) else None, x)]
    return None


@reference("CastLike")
def castlike_ref(x, like, saturate=1, round_mode="up", to=None):
    return cast_ref(x, to, saturate, round_mode) if to is not None else _cast(x, like.dtype, saturate)


@infer("CastLike")
def castlike_infer(node):
    dt = node.inputs[1].dtype
    if dt in dtypes.STORAGE_ONLY:  # the reference sees only the storage type: name the target
        node.attrs["to"] = dtypes.to_onnx(dt)
    return [(dt, node.inputs[0].shape)]


@reference("BitCast")
def bitcast_ref(x, to):
    dt = dtypes.to_torch(dtypes.from_onnx(to))
    if x.dtype == torch.bool or dt == torch.bool:  # torch cannot view bool: go through uint8
        return x.to(torch.uint8).to(dt) if dt == torch.bool else x.view(torch.uint8).view(dt)
    return x.view(dt)


@infer("BitCast")
def bitcast_infer(node):
    dt = dtypes.from_onnx(node.attrs["to"])
    if dtypes.itemsize(dt) != dtypes.itemsize(node.inputs[0].dtype):
        raise ShapeError(f"BitCast '{node.name}': {node.inputs[0].dtype} and {dt} differ in width")
    return [(dt, node.inputs[0].shape)]


@reference("Concat")
def concat_ref(*xs, axis):
    return torch.cat([x for x in xs], dim=axis)


@infer("Concat")
def concat_infer(node):
    ins = [v for v in node.inputs if v is not None]
    rank = len(ins[0].shape)
    ax = norm_axis(node.attrs["axis"], rank)
    shp = list(ins[0].shape)
    shp[ax] = norm(sum((v.shape[ax] for v in ins), 0))
    return [(ins[0].dtype, tuple(shp))]


@symval("Concat")
def concat_sym(node, *xs):
    return [np.concatenate([x.reshape(-1) if x.ndim == 0 else x for x in xs], axis=node.attrs["axis"])]


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
    if split is None and has_input(node, 1):  # computed at run time: each piece is sized then
        return list(dd_dims(node, len(node.outputs), "_split"))
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


@reference("Tile", host_inputs=(1,))
def tile_ref(x, repeats):
    return x.repeat(*tensor_arg(repeats)) if x.dim() else x.clone()


@infer("Tile")
def tile_infer(node):
    x = node.inputs[0]
    reps = known_ints(node.inputs[1])
    if reps is None:  # computed at run time: the output is sized then
        if value_len(node, 1) != len(x.shape):
            raise ShapeError(f"Tile '{node.name}': {value_len(node, 1)} repeats for rank {len(x.shape)}")
        return [(x.dtype, dd_dims(node, len(x.shape)))]
    if len(reps) != len(x.shape):
        raise ShapeError(f"Tile '{node.name}': {len(reps)} repeats for rank {len(x.shape)}")
    return [(x.dtype, tuple(norm(d * r) for d, r in zip(x.shape, reps)))]


@symval("Tile")
def tile_sym(node, x, _reps=None):
    reps = known_ints(node.inputs[1])
    return [np.tile(x, reps)] if all(isinstance(r, int) for r in reps) else None


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
    axes = known_ints(node.inputs[3]) if has_input(node, 3) else list(range(rank))
    if pads is None or axes is None:  # computed at run time: the padded axes are sized then
        dd = dd_dims(node, rank)
        pad_axes = set(range(rank)) if axes is None else {norm_axis(a, rank) for a in axes}
        return [(x.dtype, tuple(dd[i] if i in pad_axes else d for i, d in enumerate(x.shape)))]
    if len(pads) != 2 * len(axes):
        raise ShapeError(f"Pad '{node.name}': {len(pads)} pads for {len(axes)} axes")
    shp = list(x.shape)
    for j, a in enumerate(axes):
        ax = norm_axis(a, rank)
        shp[ax] = norm(shp[ax] + pads[j] + pads[j + len(axes)])
    return [(x.dtype, tuple(shp))]


@reference("Trilu", host_inputs=(1,))
def trilu_ref(x, k=None, upper=1):
    kk = scalar_int(k) if k is not None else 0
    return torch.triu(x, kk) if upper else torch.tril(x, kk)


infer("Trilu")(infer_same)


@reference("ReverseSequence")
def reverse_sequence_ref(x, sequence_lens, batch_axis=1, time_axis=0):
    t_len = x.shape[time_axis]
    t = torch.arange(t_len, device=x.device).reshape(1, -1)
    lens = sequence_lens.to(torch.int64).reshape(-1, 1)
    idx = torch.where(t < lens, lens - 1 - t, t)  # [batch, time]
    if batch_axis > time_axis:
        idx = idx.t()
    shp = [1] * x.dim()
    shp[batch_axis], shp[time_axis] = x.shape[batch_axis], t_len
    return torch.gather(x, time_axis, idx.reshape(shp).expand(x.shape))


@infer("ReverseSequence")
def reverse_sequence_infer(node):
    return [(node.inputs[0].dtype, node.inputs[0].shape)]
