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
