"""Nearest-upsampled operands of a pointwise kernel as plain zero-stride broadcasts.

An output axis of length s * n that some operand reads at y // s is split into (n, s): the index
becomes (k, j) with y = s*k + j, the upsampled operand reads k (stride along k, 0 along j) and every
other operand reads y (its stride times s along k, its stride along j). The output keeps its
memory order, so the generated kernel is the ordinary strided pointwise kernel over the split
index space: no codegen of its own, and the upsampled tensor is never written."""
from __future__ import annotations

import torch


def _factors_per_axis(inputs, ups, rank):
    """One factor per output axis (1 where nothing is upsampled), or None when operands disagree."""
    per = [1] * rank
    for t, f in zip(inputs, ups):
        for i, fi in enumerate(f or ()):
            d = rank - len(f) + i
            if fi > 1:
                if per[d] not in (1, fi):
                    return None
                per[d] = fi
    return per


def _operand_strides(t, f, out, per):
    """Strides of operand t (nearest-upsampled by f, or None) over the split index space, or None."""
    rank = len(out)
    pad = rank - t.dim()
    sizes = [1] * pad + list(t.shape)
    strides = [0] * pad + list(t.stride())
    facs = [1] * pad + list(f or [1] * t.dim())
    res = []
    for d in range(rank):
        st = strides[d] if sizes[d] != 1 else 0
        if sizes[d] * facs[d] not in (out[d], 1):
            return None
        if per[d] == 1:
            res.append(st if sizes[d] == out[d] else 0)
        elif facs[d] == per[d]:
            res += [st, 0]
        elif facs[d] == 1:
            res += [st * per[d], st] if sizes[d] == out[d] else [0, 0]
        else:
            return None
    return res


def indexed_views(inputs, ups):
    """(output shape, split shape, views) for operands upsampled by `ups` (per input: per-axis integer
    factors or None); views(tensors) gives the operands over the split shape. None when unsupported."""
    shapes = [tuple(d * s for d, s in zip(t.shape, f)) if f else tuple(t.shape) for t, f in zip(inputs, ups)]
    try:
        out = tuple(torch.broadcast_shapes(*shapes))
    except RuntimeError:
        return None
    per = _factors_per_axis(inputs, ups, len(out))
    if per is None or any(o % p for o, p in zip(out, per)):
        return None
    split = []
    for o, p in zip(out, per):
        split += [o // p, p] if p > 1 else [o]
    strides = [_operand_strides(t, f, out, per) for t, f in zip(inputs, ups)]
    if any(s is None for s in strides):
        return None

    def views(ts):
        return [t.as_strided(split, st, t.storage_offset()) for t, st in zip(ts, strides)]
    return out, tuple(split), views
