"""Triton compiles of a build in parallel, before tactic timing: every generated-kernel candidate of
every layer still to be timed is called once on the layer's benchmark inputs with launches turned
into Triton warm-ups (kernels.triton.launch.warming) under Triton's AsyncCompileMode, so each compile
goes to a thread pool; the timing that follows finds them compiled. Triton releases the GIL in its
heavy native passes and in ptxas: on this project's 2-core CI machine 8 sm90 kernels compiled in
13.2 s one after another and in 8.1 s on 2 threads. Any failure here only loses the head start (the
timing compiles what is missing, and reports its errors as before).

TF_COMPILE_THREADS=N sets the pool (default: the CPU count, at most 16; 0 or 1: off)."""
from __future__ import annotations

import logging
import os
import time

log = logging.getLogger("tensorforge")

MAX_THREADS = 16


def threads() -> int:
    env = os.environ.get("TF_COMPILE_THREADS", "").strip()
    if env:
        try:
            return max(0, int(env))
        except ValueError:
            log.warning("TF_COMPILE_THREADS=%r is not a number: compiling in parallel with the default", env)
    return min(MAX_THREADS, os.cpu_count() or 1)


def generated(tactic: dict) -> bool:
    """A tactic that launches generated Triton kernels (the ones worth compiling ahead)."""
    return tactic.get("source") == "triton"


def warm_compile(sel, layers) -> None:
    """Start the Triton compiles of every untimed generated candidate of `layers` in parallel and wait
    for them (Selector sel: its candidates, benchmark inputs and timing cache)."""
    n = threads()
    if n <= 1 or getattr(sel.device, "type", "cpu") != "cuda" or sel.level == 0 or \
            os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        return
    try:
        from concurrent.futures import ThreadPoolExecutor

        from triton.runtime._async_compile import AsyncCompileMode
    except ImportError:  # another Triton: no async mode, the timing compiles one by one
        return
    from ..kernels.triton import launch
    from . import autotune as at
    t0, seen, calls = time.perf_counter(), set(), 0
    try:
        with ThreadPoolExecutor(n, thread_name_prefix="tf-compile") as pool, \
                AsyncCompileMode(pool, ignore_errors=True), launch.warming() as launched:
            for lay in layers:
                info, _, key, _, _, todo = sel.untimed(lay)
                todo = [c for c in todo if generated(c)]
                if key is None or key in seen or not todo:
                    continue
                seen.add(key)
                try:
                    bench = at.LayerBench(sel.plan, lay, info, sel.weights, sel.device, sel.dev_weights)
                except Exception as e:  # noqa: BLE001 - (e.g. out of memory) the timing meets it again
                    log.debug("warm compile: no inputs for %s: %s", lay.name, e)
                    continue
                for c in todo:
                    try:
                        b = bench.in_layout(at.wants_channels_last(c))
                        at.layer_fn(lay, c, sel.plan.opset, sel.device)(list(b.sets[0]))
                        calls += 1
                    except Exception as e:  # noqa: BLE001 - the timing meets it again and reports it
                        log.debug("warm compile of %s for %s: %s", at.display(c), lay.name, e)
                del bench
    except Exception as e:  # noqa: BLE001 - only the head start is lost
        log.warning("parallel Triton compile stopped (%s: %s); compiling during timing instead",
                    type(e).__name__, str(e).splitlines()[0][:200] if str(e) else "")
        return
    dt = time.perf_counter() - t0
    sel.stats.update(compiled_ahead=calls, compile_threads=n, compile_ahead_s=round(dt, 3))
    log.info("Compiled the generated kernels of %d candidates (%d layers, %d launches) on %d threads in %.1f s",
             calls, len(seen), launched[0], n, dt)
