"""TopK, CumSum, Einsum, Trilu, OneHot, NonZero, Compress, EyeLike, Shrink, ReverseSequence."""
from __future__ import annotations

import torch

from .. import dtypes
from ..errors import ShapeError
from ..ir.symbolic import DATA_DEPENDENT_PREFIX, broadcast, numel, symbol
from .common import known_ints, norm_axis
from .registry import infer, reference


def dd_dim(node, tag=""):
    """The data-dependent dim of a node's output (known only after the layer runs)."""
    return symbol(f"{DATA_DEPENDENT_PREFIX}{node.name}{tag}")


def _scalar(t) -> int:
    return int(t.reshape(-1)[0])


# ---- TopK ------------------------------------------------------------------------------------
@reference("TopK", host_inputs=(1,))
def topk_ref(x, k, axis=-1, largest=1, sorted=1):
    v, i = torch.topk(x, _scalar(k), dim=axis % x.dim(), largest=bool(largest), sorted=True)
    return v, i.to(torch.int64)


@infer("TopK")
def topk_infer(node):
    x = node.inputs[0]
    ax = norm_axis(node.attrs.get("axis", -1), len(x.shape))
    k = known_ints(node.inputs[1])
    shp = list(x.shape)
    shp[ax] = k[0] if k is not None else dd_dim(node)
    return [(x.dtype, tuple(shp)), ("int64", tuple(shp))]


# ---- CumSum ----------------------------------------------------------------------------------
@reference("CumSum", host_inputs=(1,))
def cumsum_ref(x, axis, exclusive=0, reverse=0):
    ax = _scalar(axis) % x.dim()
    y = torch.flip(x, (ax,)) if reverse else x
    if exclusive:
        n = y.shape[ax]
        y = torch.cat([torch.zeros_like(y.narrow(ax, 0, min(1, n))), y.narrow(ax, 0, max(n - 1, 0))], ax)
    y = torch.cumsum(y, ax, dtype=x.dtype)
    return torch.flip(y, (ax,)) if reverse else y


@infer("CumSum")
def cumsum_infer(node):
    return [(node.inputs[0].dtype, node.inputs[0].shape)]


# ---- Einsum ----------------------------------------------------------------------------------
@reference("Einsum")
def einsum_ref(*xs, equation):
    return torch.einsum(equation.replace(" ", ""), *xs)


def _einsum_terms(eq, n_in):
    eq = eq.replace(" ", "")
    lhs, _, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != n_in:
        raise ShapeError(f"Einsum equation '{eq}' has {len(terms)} operands, node has {n_in} inputs")
    if "->" not in eq:
        once = [c for c in lhs if c.isalpha() and lhs.count(c) == 1]
        rhs = ("..." if "..." in lhs else "") + "".join(sorted(once))
    return terms, rhs


@infer("Einsum")
def einsum_infer(node):
    ins = [v for v in node.inputs if v is not None]
    terms, rhs = _einsum_terms(node.attrs["equation"], len(ins))
    dims, ell = {}, []
    for t, v in zip(terms, ins):
        letters = t.replace("...", ".")
        n_ell = len(v.shape) - (len(letters) - letters.count("."))
        pos = 0
        for c in letters:
            if c == ".":
                ell.append(tuple(v.shape[pos:pos + n_ell]))
                pos += n_ell
            else:
                if c not in dims or dims[c] == 1:
                    dims[c] = v.shape[pos]
                pos += 1
    ell_shape = broadcast(*ell) if ell else ()
    out = []
    for c in rhs.replace("...", "."):
        out.extend(ell_shape if c == "." else (dims[c],))
    return [(ins[0].dtype, tuple(out))]


# ---- Trilu / EyeLike / Shrink ------------------------------------------------------------------
@reference("Trilu", host_inputs=(1,))
def trilu_ref(x, k=None, upper=1):
    kk = _scalar(k) if k is not None else 0
    return torch.triu(x, kk) if upper else torch.tril(x, kk)


@infer("Trilu", "Shrink")
def same_infer(node):
    return [(node.inputs[0].dtype, node.inputs[0].shape)]


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


@reference("Shrink")
def shrink_ref(x, bias=0.0, lambd=0.5):
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    y = torch.where(x < -lambd, x + bias, zero)
    return torch.where(x > lambd, x - bias, y).to(x.dtype)


# ---- OneHot -----------------------------------------------------------------------------------
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


# ---- data-dependent: NonZero / Compress ----------------------------------------------------------
@reference("NonZero", data_dependent=True)
def nonzero_ref(x):
    return torch.nonzero(x.reshape(1) if x.dim() == 0 else x).t().contiguous()


@infer("NonZero")
def nonzero_infer(node):
    x = node.inputs[0]
    n = int(torch.count_nonzero(x.const)) if x.const is not None else dd_dim(node)
    return [("int64", (max(len(x.shape), 1), n))]


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


# ---- ReverseSequence -----------------------------------------------------------------------------
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

