"""Shape and data-movement ops: Shape, Reshape, Flatten, (Un)Squeeze, Transpose, Concat, Gather,
Slice, Cast, Identity, ConstantOfShape, Expand, Range, Size, Dropout."""
from __future__ import annotations

import numpy as np
from ..ir.lazy import sympy
import torch

from .. import dtypes
from ..errors import ShapeError
from ..ir.symbolic import norm, numel
from .common import attr_or_input, has_input, infer_same, known_ints, norm_axis, tensor_arg
from .registry import infer, reference, symval


def _obj(seq, shape=None):
    a = np.empty(len(seq), dtype=object)
    a[:] = list(seq)
    return a.reshape(shape) if shape is not None else a


# ---- Shape / Size ---------------------------------------------------------------------------
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
    return [_obj(shp[s:e])]


@reference("Size")
def size_ref(x):
    return torch.tensor(x.numel(), dtype=torch.int64)


infer("Size")(lambda node: [("int64", ())])
symval("Size", always=True)(lambda node, _x=None: [_obj([numel(node.inputs[0].shape)], ())])


# ---- Reshape family (views) ----------------------------------------------------------------
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
    if tgt is None:
        raise ShapeError(f"Reshape '{node.name}': target shape is data-dependent (not supported)")
    return [(node.inputs[0].dtype, reshape_dims(node.inputs[0].shape, tgt, node.attrs.get("allowzero", 0)))]


@symval("Reshape")
def reshape_sym(node, x, _shape=None):
    return [x.reshape(tuple(int(d) for d in reshape_infer(node)[0][1]))]


@reference("Flatten", view=True)
def flatten_ref(x, axis=1):
    a = axis % x.dim() if x.dim() and axis < 0 else axis
    return x.reshape(int(np.prod(x.shape[:a], dtype=np.int64)), -1)


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

# ---- Transpose / Concat / Gather / Slice -----------------------------------------------------


@reference("Transpose")
def transpose_ref(x, perm=None):
    perm = perm if perm is not None else list(range(x.dim()))[::-1]
    return x.permute(*perm)


@infer("Transpose")
def transpose_infer(node):
    shp = node.inputs[0].shape
    perm = node.attrs.get("perm", list(range(len(shp)))[::-1])
    return [(node.inputs[0].dtype, tuple(shp[p] for p in perm))]


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


@reference("Gather")
def gather_ref(x, idx, axis=0):
    """index_select after one remainder kernel mapping negative indices into [0, n) (no host sync:
    CUDA-graph capturable; advanced indexing is not)."""
    axis = axis % x.dim()
    n = x.shape[axis]
    idx64 = idx.to(torch.int64)
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
    starts, ends, axes, steps = _slice_params(node, len(shp))
    for s, e, a, st in zip(starts, ends, axes, steps):
        if isinstance(s, sympy.Basic) or isinstance(e, sympy.Basic):
            shp[a] = _slice_dim_symbolic_bounds(node, shp[a], s, e, st)
        else:
            shp[a] = _slice_dim(shp[a], s, e, st)
    return [(node.inputs[0].dtype, tuple(shp))]


@symval("Slice")
def slice_sym(node, x, *_):
    starts, ends, axes, steps = _slice_params(node, x.ndim)
    if any(isinstance(v, sympy.Basic) for v in list(starts) + list(ends)):
        return None  # symbolic bounds: the contents stay unknown
    idx = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        idx[a] = slice(*slice(s, e, st).indices(x.shape[a]))
    return [x[tuple(idx)]]


# ---- Cast / ConstantOfShape / Expand / Range ------------------------------------------------
def _cast(x, dt, saturate=1):
    if dt in (torch.float8_e4m3fn, torch.float8_e4m3fnuz, torch.float8_e5m2, torch.float8_e5m2fnuz) \
            and x.dtype != dt:
        from .quant import to_float8  # ONNX saturate/overflow rules, not torch's
        return to_float8(x, dt, saturate)
    return x.to(dt)


@reference("Cast")
def cast_ref(x, to, saturate=1, round_mode=None):
    return _cast(x, dtypes.to_torch(dtypes.from_onnx(to)), saturate)


infer("Cast")(lambda node: [(dtypes.from_onnx(node.attrs["to"]), node.inputs[0].shape)])


@symval("Cast")
def cast_sym(node, x):
    if dtypes.from_onnx(node.attrs["to"]) not in ("int64", "int32"):
        return None
    return [x]


@reference("CastLike")
def castlike_ref(x, like, saturate=1, round_mode=None):
    return _cast(x, like.dtype, saturate)


infer("CastLike")(lambda node: [(node.inputs[1].dtype, node.inputs[0].shape)])


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
    if tgt is None:
        raise ShapeError(f"Expand '{node.name}': target shape is data-dependent (not supported)")
    return [(node.inputs[0].dtype, broadcast(node.inputs[0].shape, tuple(tgt)))]


@symval("Expand")
def expand_sym(node, x, shape):
    dims = [int(d) for d in expand_infer(node)[0][1]]
    return [np.broadcast_to(x, dims).copy()]


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
    return [_obj(range(*vals))]


_ = has_input
