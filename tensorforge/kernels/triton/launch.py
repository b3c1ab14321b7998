"""Generated kernels: launched from the engine's cubins (CUDA driver API) or compiled and launched by
Triton (imported here, lazily, only when a launch has no stored cubin)."""
from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import linecache
import logging
import os

import torch

from ... import dtypes
from ..cubin import Binary, spec_of
from ..driver import current_store, untracked_launch

_COMPILED: dict = {}
_RECORDERS: list = []  # open recordings (build time): lists that collect the Binary of every launch
_WARMING: list = []  # open warm-ups (build time): launches only start Triton's compile, nothing runs
log = logging.getLogger("tensorforge")


class MissingKernel(RuntimeError):
    """No stored cubin for a launch and no Triton to compile one (the runner falls back)."""


class Kernel:
    """A generated Triton kernel, launched as `kernel[grid](*args, **meta)`.

    Inside an engine's execution the launch uses the engine's stored cubin for this source and
    specialization (kernels.driver: CUDA driver API, no Triton); otherwise (building, or a
    specialization the engine did not store) Triton compiles and launches it, and open recordings
    (the builder's) collect the compiled cubin with its launch metadata."""

    def __init__(self, src: str, name: str, key: str):
        self.src, self.name, self.key = src, name, key
        self._jits: dict = {}  # TRITON_INTERPRET mode -> @triton.jit function
        self._compiled: dict = {}  # spec -> Binary of what Triton compiled here

    def __getitem__(self, grid):
        return functools.partial(self.run, grid)

    def run(self, grid, *args, **meta):
        spec = spec_of(args, meta)
        store = current_store()
        dev = next((a.device.index for a in args if isinstance(a, torch.Tensor)), None)
        if store is not None:
            lk = store.launcher(self.key, spec, torch.cuda.current_device() if dev is None else dev)
            if lk is not None:
                call = list(args) + [meta.get(n) for n in lk.names[len(args):]]
                lk.launch(grid, call, torch.cuda.current_stream().cuda_stream)
                return
        self._triton(grid, spec, args, meta)

    @property
    def jit(self):
        """The @triton.jit function (imports triton; MissingKernel without it). Triton decides at
        decoration time whether a function runs in its interpreter (TRITON_INTERPRET), so there is
        one per mode: a kernel made for the GPU is never handed to an interpreter run."""
        interp = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
        fn = self._jits.get(interp)
        if fn is None:
            if importlib.util.find_spec("triton") is None:
                raise MissingKernel(f"{self.name}: no stored cubin for this specialization and no Triton")
            fn = self._jits[interp] = jit_function(self.src, self.name, self.key)
        return fn

    def _triton(self, grid, spec, args, meta):
        """Compile (once per spec) and launch through Triton; record the cubin for the engine. Inside
        warming(): compile only (asynchronously under Triton's AsyncCompileMode), launch nothing."""
        if _WARMING:
            self.jit.warmup(*args, grid=grid, **meta)
            _WARMING[-1] += 1
            return
        untracked_launch()
        ck = self.jit[grid](*args, **meta)
        if _RECORDERS and ck is not None and hasattr(ck, "asm"):  # (the interpreter compiles nothing)
            b = self._compiled.get(spec)
            if b is None:
                b = self._compiled[spec] = binary_of(self.key, spec, ck, self.jit.arg_names)
            for rec in _RECORDERS:
                if b is not None:
                    rec.append(b)


def binary_of(key: str, spec: str, ck, arg_names) -> Binary | None:
    """The Binary of a Triton CompiledKernel (None for launches the driver path does not cover)."""
    md = ck.metadata
    sig = ck.src.signature
    if getattr(md, "num_ctas", 1) != 1 or getattr(md, "launch_cooperative_grid", False) or \
            getattr(md, "launch_pdl", False) or getattr(md, "tensordesc_meta", None) or \
            list(sig) != list(arg_names) or "cubin" not in ck.asm:
        return None
    params = tuple((n, str(sig[n])) for n in arg_names)
    return Binary(key, spec, md.name, params, int(md.num_warps), int(md.shared), bytes(ck.asm["cubin"]),
                  (int(md.global_scratch_size), int(md.global_scratch_align)),
                  (int(md.profile_scratch_size), int(md.profile_scratch_align)))


@contextlib.contextmanager
def recording():
    """Collect the Binary of every Triton launch made inside (any thread) into the yielded list."""
    rec: list = []
    _RECORDERS.append(rec)
    try:
        yield rec
    finally:
        _RECORDERS.remove(rec)


@contextlib.contextmanager
def warming():
    """Inside, a launch of a generated kernel compiles it (Triton's warmup) and runs nothing; yields a
    one-element list counting those launches. Outputs of what runs inside are meaningless."""
    box = [0]
    _WARMING.append(0)
    try:
        yield box
    finally:
        box[0] = _WARMING.pop()


def compile_source(src: str, name: str) -> Kernel:
    """The kernel `name` of a generated module (one Kernel per source hash; nothing compiled yet)."""
    key = hashlib.sha1(src.encode()).hexdigest()[:20]
    k = _COMPILED.get((key, name))
    if k is None:
        k = _COMPILED[(key, name)] = Kernel(src, name, f"{name}-{key}")
    return k


def jit_function(src: str, name: str, key: str):
    """The @triton.jit function `name` of a generated module (imports triton).

    The source is registered in linecache under a pseudo file name so that triton (which reads
    kernels with inspect.getsource) finds it without anything being written to disk."""
    fname = f"<tensorforge-triton-{key}>"
    linecache.cache[fname] = (len(src), None, src.splitlines(True), fname)
    ns = {"__name__": f"tensorforge_triton_{key}", "__file__": fname}
    exec(compile(src, fname, "exec"), ns)  # noqa: S102 - our own generated code, at build time
    return ns[name]


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
