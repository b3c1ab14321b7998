"""GPU time per inference of a garden engine (bench/garden_gpu.py): a CUDA-graph replay when the
whole plan is capturable, else the context's own graph prefix plus its eager rest (wall clock)."""
from __future__ import annotations

import time

from tests.garden.check import first_line


def time_engine(eng, feed: dict) -> tuple[float, str]:
    """(ms per inference, how): a CUDA-graph replay timed with CUDA events when the whole plan is
    capturable; else (run-time If, data-dependent shapes) the context's graph prefix plus the eager
    rest, host wall clock per synchronized inference; on a CPU, host wall clock."""
    import torch

    from tensorforge.runtime.dynamic import graph_prefix
    if eng.device.type != "cuda":
        ctx = eng.create_execution_context()
        return wall_ms(lambda: ctx.infer(feed), iters=5), "cpu"  # only to try the script on a CPU
    ins = {k: torch.as_tensor(v) if eng.is_shape_inference_io(k) else torch.as_tensor(v).cuda()
           for k, v in feed.items()}
    ctx = eng.create_execution_context(use_cuda_graph=True)
    first = ctx.infer(ins)
    xp = ctx.exec_plan
    if graph_prefix(ctx.plan, xp) < len(xp.launches) or any(v is None for v in first.values()):
        n = graph_prefix(ctx.plan, xp)
        return wall_ms(lambda: ctx.infer(ins)), f"graph {n}/{len(xp.launches)} + eager"
    try:
        return _graph_time(eng, ins, first), "CUDA graph"
    except Exception as e:  # noqa: BLE001 - capture refused: say so and time the eager run instead
        return wall_ms(lambda: ctx.infer(ins)), f"eager (capture failed: {first_line(e)[:80]})"


def _graph_time(eng, ins: dict, first: dict) -> float:
    """GPU ms of one inference replayed from a CUDA graph (inputs and outputs bound on the device):
    the runtime's one capture routine, timed by bench/peers.gpu_time like every other benchmark."""
    from bench.peers import engine_graph, gpu_time
    replay, _ = engine_graph(eng.create_execution_context(), ins, first)
    return gpu_time(replay, target_ms=50.0, repeats=5)


def wall_ms(fn, iters: int = 30) -> float:
    """Median host wall-clock ms of fn() (each call synchronizes: infer copies its outputs out)."""
    import statistics
    for _ in range(3):
        fn()
    t = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        t.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(t)
