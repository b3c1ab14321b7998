"""The one CUDA-graph capture routine (runtime contexts, the builder's timing, forgeexec)."""
from __future__ import annotations

import threading

import torch

CAPTURE_LOCK = threading.RLock()  # one capture at a time per process (threads each own a context)


def capture(fn, stream, pool=None) -> "torch.cuda.CUDAGraph":
    """A CUDA graph of what fn() enqueues on `stream` (which must not be the legacy default stream).

    pool: a memory pool (torch.cuda.graph_pool_handle()) shared with other graphs that are never replayed
    concurrently with this one (one execution context's graphs): what a capture freed is reused by the next
    one. Without it each graph keeps a private pool of its own peak (session 12 on the H200: a serving
    Runner warming up ResNet-50 FP16 at batch sizes 1..128, a graph each, ran out of the 140 GB).
    Thread-local capture mode: other threads may keep using CUDA meanwhile. Raises when capture fails
    (something in fn synchronizes or is not capturable)."""
    g = torch.cuda.CUDAGraph()
    with CAPTURE_LOCK, torch.cuda.graph(g, pool=pool, stream=stream, capture_error_mode="thread_local"):
        fn()
    return g


def context_graph(ctx, feeds: dict, first: dict):
    """(replay, outputs) of one inference of execution context `ctx` captured in a CUDA graph: inputs `feeds`
    (device tensors) and fresh outputs shaped like `first` (an earlier infer's outputs) bound, one enqueue on a
    side stream outside the capture (weight copies, first launches), then the capture (raises when it fails)
    and one replay (the graph uploaded). For timing a whole engine (the builder's FP16-form check, bench/)."""
    outs = {k: torch.empty_like(v) for k, v in first.items()}
    for n, v in feeds.items():
        ctx.set_input_shape(n, tuple(v.shape))
        ctx.set_tensor_address(n, v)
    for n, v in outs.items():
        ctx.set_tensor_address(n, v)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    ctx.execute_async(s)
    s.synchronize()
    g = capture(lambda: ctx.execute_async(s), s)
    g.replay()
    torch.cuda.synchronize()
    return g.replay, outs
