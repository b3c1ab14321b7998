"""Pre-bound library layers on the eager path: a layer whose work is not stored cubins (cuDNN,
cuBLAS, SDPA, torch reference ops) is captured once, alone, into a small CUDA graph and replayed
afterwards with one cuGraphLaunch (~2 µs of host time instead of 20-100 µs of Python and library
setup per call).

Every layer keeps its own launch (per-layer profiling, data-dependent tails, control flow and
capture fallback still run layer by layer). Rules:
- only layers whose inputs and outputs are fixed buffers of the shape set (weights, bindings, arena
  views) and that do not declare `capturable = False`; a capture that fails (a host sync, a
  non-capturable call) leaves the layer called directly;
- captured at a layer's second run, so the first inference of a shape set pays nothing;
- temporaries of the captured work come from one private memory pool per stream of the plan:
  layers of one stream run one after the other, so they may share it (torch's rule for graphs
  sharing a pool), and layers of different streams never do;
- each stream of the plan captures on its own side stream, so library workspaces bound to the
  capture stream (cuBLAS) are never shared between streams;
- never launched inside another capture (the whole-plan CUDA graph captures the layers directly);
- an output the layer allocates itself (no planned buffer) is allocated once, at capture, and kept
  with the graph, so that its readers can be captured too; kept outputs are not reused between
  layers, so their total is capped per context (`max_kept_bytes`, default 1 GiB; beyond it such
  layers are called directly)."""
from __future__ import annotations

import ctypes
import warnings

import torch

from . import graphs


class LayerGraph:
    """One layer's captured work; calling it with a stream handle launches it there."""
    graph = True

    def __init__(self, g):
        self.g = g  # keeps the graph (and its exec) alive
        raw = getattr(g, "raw_cuda_graph_exec", None)
        self.handle = ctypes.c_void_p(int(raw())) if raw is not None else None
        self.launch = None

    def __call__(self, stream: int) -> None:
        if self.handle is None:  # older torch: replay on the current stream (the caller's)
            self.g.replay()
            return
        launch = self.launch
        if launch is None:
            from ..kernels.driver import libcuda
            launch = self.launch = libcuda().cuGraphLaunch
        err = launch(self.handle, ctypes.c_void_p(stream))
        if err:
            raise RuntimeError(f"cuGraphLaunch failed with CUDA error {err}")


class LayerGraphs:
    """A context's capture streams and memory pools for layer graphs (one of each per plan stream)."""

    def __init__(self, device, max_kept_bytes: int = 1 << 30):
        self.device = device
        self.max_kept_bytes = max_kept_bytes
        self.kept_bytes = 0
        self._streams: dict = {}
        self._pools: dict = {}
        self.captured = 0
        self.failed = 0
        self.errors: list = []  # the first few capture failures, for diagnostics

    def capture(self, fn, stream_id: int):
        """A LayerGraph of what fn() enqueues, or None when it cannot be captured."""
        cap = self._streams.get(stream_id)
        if cap is None:
            cap = self._streams[stream_id] = torch.cuda.Stream(self.device)
            self._pools[stream_id] = torch.cuda.graph_pool_handle()
        g, errs = self._try(fn, cap, self._pools[stream_id])
        if errs:
            # a capture that failed to end leaves torch's allocator routing the capture stream's
            # allocations to its pool: later captures of this plan stream get a fresh stream and pool
            del self._streams[stream_id]
            self.failed += 1
            if len(self.errors) < 8:
                self.errors.append(_text(errs))
            return None
        self.captured += 1
        return LayerGraph(g)

    def keep(self, outs):
        """Account for the outputs a captured layer allocated (pairs of slot, tensor): their bytes, or
        None when they would take the kept total over the cap (the graph is then dropped)."""
        n = sum(t.untyped_storage().nbytes() for _, t in outs if isinstance(t, torch.Tensor))
        if self.kept_bytes + n > self.max_kept_bytes:
            return None
        self.kept_bytes += n
        return n

    def release(self, nbytes: int) -> None:
        """A plan whose layer graphs kept `nbytes` was dropped."""
        self.kept_bytes = max(0, self.kept_bytes - nbytes)

    @staticmethod
    def _try(fn, cap, pool):
        """(graph, errors) of one capture attempt of fn() on `cap`."""
        g, errs = torch.cuda.CUDAGraph(), []
        with graphs.CAPTURE_LOCK, torch.cuda.stream(cap):
            try:
                g.capture_begin(pool=pool, capture_error_mode="thread_local")
            except Exception as e:
                return g, [e]
            try:
                fn()
            except Exception as e:  # a sync or a non-capturable call: the layer is called directly
                errs.append(e)
            finally:
                try:
                    with warnings.catch_warnings():  # a layer with no device work (e.g. a copy onto
                        warnings.filterwarnings("ignore", "The CUDA Graph is empty")  # itself): harmless
                        g.capture_end()
                except Exception as e:
                    errs.append(e)
        return g, errs


def _text(errs) -> str:
    return "; ".join(f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}" for e in errs)
