"""Compiling generated sources and launching them (triton is imported here, lazily, only)."""
from __future__ import annotations

import hashlib
import linecache
import os

import torch

from ... import dtypes

_COMPILED: dict = {}


def compile_source(src: str, name: str):
    """The @triton.jit function `name` of a generated module (cached per source hash).

    The source is registered in linecache under a pseudo file name so that triton (which reads
    kernels with inspect.getsource) finds it without anything being written to disk. Triton decides
    at decoration time whether a function runs in its interpreter (TRITON_INTERPRET), so the cache
    is also keyed by that mode: a kernel made for the GPU is never handed to an interpreter run."""
    key = hashlib.sha1(src.encode()).hexdigest()[:20]
    interp = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
    fn = _COMPILED.get((key, name, interp))
    if fn is None:
        fname = f"<tensorforge-triton-{key}>"
        linecache.cache[fname] = (len(src), None, src.splitlines(True), fname)
        ns = {"__name__": f"tensorforge_triton_{key}", "__file__": fname}
        exec(compile(src, fname, "exec"), ns)  # noqa: S102 - our own generated code
        fn = _COMPILED[(key, name, interp)] = ns[name]
    return fn


def contiguous_strides(shape):
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc *= d
    return out[::-1]


def operand_strides(t: torch.Tensor, shape):
    """Element strides of t broadcast to `shape` (0 on broadcast dims)."""
    return list(t.expand(shape).stride()) if tuple(t.shape) != tuple(shape) else list(t.stride())


def collapse(shape, strides_list):
    """Drop size-1 dims and merge adjacent dims that are contiguous for every operand."""
    merged = []
    for i, d in enumerate(shape):
        if d == 1:
            continue
        st = [s[i] for s in strides_list]
        if merged:
            pd, pst = merged[-1]
            if all(ps == s * d for ps, s in zip(pst, st)):
                merged[-1] = (pd * d, st)
                continue
        merged.append((d, st))
    dims = [d for d, _ in merged]
    return dims, [[st[k] for _, st in merged] for k in range(len(strides_list))]


def kind_of(strides, shape, split=None) -> str:
    """Access kind of an operand with `strides` over `shape` (split = number of row dims)."""
    live = [(s, d) for s, d in zip(strides, shape) if d != 1]
    if all(s == 0 for s, _ in live):
        return "scalar"
    if all(s == c for (s, d), c in zip(zip(strides, shape), contiguous_strides(shape)) if d != 1):
        return "full"
    if split is not None:
        outer, inner = shape[:split], shape[split:]
        so, si = strides[:split], strides[split:]
        if all(s == 0 for s, d in zip(so, outer) if d != 1) and \
                all(s == c for s, c, d in zip(si, contiguous_strides(inner), inner) if d != 1):
            return "inner"
        if all(s == 0 for s, d in zip(si, inner) if d != 1) and \
                all(s == c for s, c, d in zip(so, contiguous_strides(outer), outer) if d != 1):
            return "outer"
    return "strided"


def dtype_name(t: torch.Tensor) -> str:
    return dtypes.from_torch(t.dtype)


def strided_args(inputs, shape, kinds):
    """(rank, [d1..], [strides of strided operands]) over the jointly collapsed shape."""
    idx = [i for i, k in enumerate(kinds) if k == "strided"]
    if not idx:
        return 0, [], []
    sts = [operand_strides(inputs[i], shape) for i in idx] + [contiguous_strides(shape)]
    dims, cst = collapse(shape, sts)
    if not dims:
        dims, cst = [1], [[0] for _ in sts]
    return len(dims), dims[1:], [s for st in cst[:-1] for s in st]


def next_pow2(n: int, lo: int = 16, hi: int = 4096) -> int:
    p = lo
    while p < n and p < hi:
        p *= 2
    return p


def empty(shape, dtype: str, device):
    return torch.empty(tuple(shape), dtype=dtypes.to_torch(dtype), device=device)
