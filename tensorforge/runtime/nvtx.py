"""NVTX ranges per layer (forgeexec --profilingVerbosity=detailed, ExecutionContext(nvtx=True)), so an
Nsight Systems timeline maps kernels to layers. Off by default and free when off: the wrapped launch
list is chosen once per plan, never checked per layer. Ranges are host-side: a CUDA graph replay
shows none (they mark its capture and the eager runs)."""
from __future__ import annotations

import dataclasses


def api():
    """(range_push, range_pop) of torch.cuda.nvtx with CUDA, else of the `nvtx` package; None if neither."""
    import torch
    if torch.cuda.is_available():
        return torch.cuda.nvtx.range_push, torch.cuda.nvtx.range_pop
    try:
        import nvtx  # the NVIDIA package: works without a CUDA build of torch
    except ImportError:
        return None
    return nvtx.push_range, nvtx.pop_range


def nvtx_wrapped(launch_fns, names, push_pop=None) -> list:
    """Each callable of `launch_fns` wrapped in an NVTX range named after its layer (`names`, same
    order); the callables unchanged when NVTX is unavailable. Attributes the runtime reads from a
    kernel (`capturable`) are kept; `bind` is dropped, so every launch goes through the wrapper."""
    push_pop = push_pop or api()
    if push_pop is None:
        return list(launch_fns)
    return [_ranged(fn, name, *push_pop) for fn, name in zip(launch_fns, names, strict=True)]


def _ranged(fn, name, push, pop):
    """fn inside one NVTX range (popped also when fn raises)."""
    def ranged(*args, **kw):
        push(name)
        try:
            return fn(*args, **kw)
        finally:
            pop()
    ranged.capturable = getattr(fn, "capturable", True)
    ranged.__wrapped__ = fn
    return ranged


def wrap_plan(xp):
    """ExecPlan `xp` with every launch's kernel in an NVTX range named after its layer."""
    fns = nvtx_wrapped([L.fn for L in xp.launches], [L.name for L in xp.launches])
    return dataclasses.replace(xp, launches=tuple(dataclasses.replace(L, fn=f) for L, f in zip(xp.launches, fns)))
