"""Compiled Triton kernels stored in the engine, recorded at build time.

The finished engine runs once per profile at its min, opt and max shapes while a recording is open
(launch.recording): every Triton launch contributes its cubin and launch metadata (kernel.cubin).
Nothing else is stored: no launcher or utility .so, no IR, no Python. At load the runtime launches
these cubins with the CUDA driver API (kernels.driver) and writes nothing into any cache."""
from __future__ import annotations

import logging
import sys
import time

from .. import cubin

log = logging.getLogger("tensorforge")


def uses_triton(plan) -> bool:
    return any((lay.tactic or {}).get("source") == "triton" or (lay.tactic or {}).get("name") == "device_kernel"
               for lay in plan.layers)  # device_kernel: a plugin's Triton kernel (kernels.plugin_device)


def triton_version() -> str | None:
    mod = sys.modules.get("triton")
    return getattr(mod, "__version__", None) if mod is not None else None


def capture(engine) -> bytes:
    """The artifact blob of the cubins a warm-up of `engine` launches (b"" if none)."""
    if engine.device.type != "cuda" or not uses_triton(engine.plan):
        return b""
    from .launch import recording
    t0 = time.perf_counter()
    try:
        with recording() as rec:
            warm_up(engine)
    except Exception as e:  # noqa: BLE001 - the engine is still valid; Triton compiles at run time
        log.warning("compiled kernels not stored in the engine (%s: %s); loading it will need Triton",
                    type(e).__name__, str(e).splitlines()[0][:200] if str(e) else "")
        return b""
    blob = cubin.pack(rec, triton_version())
    log.info("Stored %d compiled kernels (%.2f MiB of cubins) in the engine in %.3f sec",
             len({(b.key, b.spec) for b in rec}), len(blob) / 2**20, time.perf_counter() - t0)
    return blob


def warm_up(engine) -> None:
    """One inference per optimization profile at its opt, min and max shapes (max: when memory allows)."""
    import torch
    ctx = engine.create_execution_context()
    for i, feeds_i in enumerate(zip(*(feeds(engine.plan, k) for k in (1, 0, 2)))):
        ctx.set_optimization_profile(i)
        for j, feed in enumerate(feeds_i):
            try:
                ctx.infer(feed)
            except torch.cuda.OutOfMemoryError:
                if j == 0:
                    raise
                log.info("profile %d: no warm-up at %s shapes (out of memory)", i, ("min", "max")[j - 1])
    if engine.device.type == "cuda":
        torch.cuda.synchronize(engine.device)


def feeds(plan, which: int = 1) -> list:
    """A feed per profile at its min (0), opt (1) or max (2) shapes: floats in [-1, 1), other dtypes
    zero (valid indices), shape-tensor inputs their profile values."""
    import torch

    from ... import dtypes
    g = torch.Generator().manual_seed(0)
    out = []
    for prof in plan.profiles or [None]:
        shapes, values = (prof.shapes, prof.values or {}) if prof is not None else ({}, {})
        feed = {}
        for n in plan.inputs:
            spec = plan.tensors[n]
            dt = dtypes.to_torch(spec.dtype)
            if n in values:
                feed[n] = torch.tensor(values[n][which], dtype=dt).reshape(tuple(spec.shape))
                continue
            shape = tuple(shapes[n][which]) if n in shapes else \
                tuple(d if isinstance(d, int) else 1 for d in spec.shape)
            feed[n] = (torch.rand(shape, generator=g) * 2 - 1).to(dt) if dt.is_floating_point else \
                torch.zeros(shape, dtype=dt)
        out.append(feed)
    return out
