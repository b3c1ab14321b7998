"""CUDA graphs of an execution context: one per shape set, captured after a first eager run (which
resolves shapes and validates outputs; capture never happens during it), replayed afterwards. With
data-dependent layers the graph holds the static prefix of the plan and the dynamic tail runs
eagerly after each replay, from the slots the graph fills."""
from __future__ import annotations

import torch

from . import graphs, steps
from .dynamic import graph_prefix


def run(ctx, stream) -> None:
    """Replay ctx's graph of its prepared shape set (capture it the first time), then the dynamic tail."""
    key = ctx._prepared_key
    entry = ctx._graphs.get(key)
    n = graph_prefix(ctx.plan, ctx._xp)
    if entry is None:
        # the eager first run loads kernels (module loads synchronize the device), so it too waits for
        # another thread's capture to end: run during one, it invalidated that capture (session 10 on
        # the H200: 4 threads, each its own context, "operation not permitted when stream is capturing")
        with graphs.CAPTURE_LOCK:
            ctx._run(stream)  # resolves shapes and validates outputs; never captured
            full = ctx._last
            cap = ctx._ss.stream("capture", stream)
            cap.wait_stream(stream)
            if ctx._graph_pool is None:  # one pool for all of the context's graphs (replayed one at a time)
                ctx._graph_pool = torch.cuda.graph_pool_handle()
            g = graphs.capture(lambda: ctx._run(cap, capturing=True, stop=n), cap, ctx._graph_pool)
            stream.wait_stream(cap)
        # kept with the graph: its plan and arena; the capture's slots only when a dynamic tail reads them after
        # each replay. Otherwise the tensors the captured kernels allocated are dropped: their memory stays in
        # the context's graph pool, which the context's next captures reuse (graphs of one context replay one
        # at a time, never concurrently). Kept, they made the pool hold every graph's intermediates side by side
        # (a multi-stream plan releases no slot during the run): session 12 on the H200, 300 MiB for 48 batch
        # sizes of resnet50_small where the largest graph alone took 46.
        ctx._graphs[key] = (g, ctx._xp, ctx._last if n < len(ctx._xp.launches) else None, ctx._arena)
        ctx._last = full
        while len(ctx._graphs) > ctx.graph_cache_size:
            ctx._graphs.popitem(last=False)
        return
    ctx._graphs.move_to_end(key)
    entry[0].replay()
    if n < len(entry[1].launches):  # the dynamic tail: eager, from the slots the graph fills
        ctx._last, _ = steps.run(entry[1], stream, ctx._ss, None, None, True, ctx._arena_ptr,
                                 ctx._check_planned, None, start=n, slots=entry[2])
    if ctx._consumed_event is not None:
        ctx._consumed_event.record(stream)

