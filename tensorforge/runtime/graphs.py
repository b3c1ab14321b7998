"""The one CUDA-graph capture routine (runtime contexts, the builder's timing, forgeexec)."""
from __future__ import annotations

import threading

import torch

CAPTURE_LOCK = threading.RLock()  # one capture at a time per process (threads each own a context)


def capture(fn, stream) -> "torch.cuda.CUDAGraph":
    """A CUDA graph of what fn() enqueues on `stream` (which must not be the legacy default stream).

    Thread-local capture mode: other threads may keep using CUDA meanwhile. Raises when capture fails
    (something in fn synchronizes or is not capturable)."""
    g = torch.cuda.CUDAGraph()
    with CAPTURE_LOCK, torch.cuda.graph(g, stream=stream, capture_error_mode="thread_local"):
        fn()
    return g
