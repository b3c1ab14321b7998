"""Pack requests into engine calls and split the results back: pure functions, no server."""
from __future__ import annotations

import numpy as np

from .spec import ServeSpec


def shape_key(spec: ServeSpec, feed: dict) -> tuple:
    """Requests can share a call only when every non-batch dim matches."""
    return tuple(feed[n].shape[1:] for n in spec.input_names)


def plan_chunks(spec: ServeSpec, feeds: list, rows: list) -> list:
    """Index lists, one per engine call: arrival order, same non-batch shapes, rows <= max batch.

    A request (b rows, b <= max batch) is never split over two calls."""
    if not spec.batched:
        return [[i] for i in range(len(feeds))]
    open_, out = {}, []
    for i, (f, b) in enumerate(zip(feeds, rows)):
        k = shape_key(spec, f)
        idx, n = open_.get(k, ([], 0))
        if idx and n + b > spec.max_batch:
            out.append(idx)
            idx, n = [], 0
        open_[k] = (idx + [i], n + b)
    out.extend(idx for idx, _ in open_.values() if idx)
    return sorted(out, key=lambda c: c[0])


def merge(spec: ServeSpec, feeds: list) -> tuple[dict, int]:
    """One feed from several requests (concatenated on dim 0); pad up to the profile's min batch
    by repeating the last row. Returns (feed, real rows)."""
    if not spec.batched:
        assert len(feeds) == 1
        return feeds[0], 1
    out = {n: np.concatenate([f[n] for f in feeds], axis=0) if len(feeds) > 1 else feeds[0][n]
           for n in spec.input_names}
    real = next(iter(out.values())).shape[0]
    if real < spec.min_batch:  # only where the profile demands it
        pad = spec.min_batch - real
        out = {n: np.concatenate([a, np.repeat(a[-1:], pad, axis=0)], axis=0) for n, a in out.items()}
    return out, real


def split(spec: ServeSpec, outputs: dict, rows: list) -> list:
    """Per-request output dicts (row slices, padding dropped) from one call's outputs."""
    if not spec.batched:
        return [outputs]
    res, start = [], 0
    for b in rows:
        res.append({n: np.ascontiguousarray(a[start:start + b]) for n, a in outputs.items()})
        start += b
    return res
