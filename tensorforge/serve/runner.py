"""Runs batches of validated requests on one engine context; a failing request fails alone."""
from __future__ import annotations

import contextlib
import logging
import threading
import time

import numpy as np

from ..env import knobs
from . import batching
from .metrics import Metrics
from .spec import RequestError, ServeSpec, batch_of, from_engine, np_dtype

log = logging.getLogger("tensorforge.serve")


WARMUP = ("all", "pow2", "none")


class EngineFailure(Exception):
    """The engine raised while running a request (answered 500; batch-mates are unaffected)."""


class Runner:
    """One engine and one execution context (one per replica / Triton instance); thread-safe."""

    def __init__(self, engine_path: str, device=None, max_batch: int | None = None,
                 cuda_graph: bool | None = None, warmup: str | None = None):
        """warmup: the batch sizes run once before serving, "all" (1..max batch: the default on a GPU),
        "pow2" or "none" (the default on the CPU); env TENSORFORGE_SERVE_WARMUP when not given."""
        from ..runtime import Engine  # the runtime only: no optimizer, onnx or sympy in a server
        self.engine = Engine.load(engine_path, device=device)
        self.spec: ServeSpec = from_engine(self.engine, max_batch)
        gpu = self.engine.device.type == "cuda"
        if cuda_graph is None and knobs().serve_no_graph:  # set for a server's processes (bench/serve.py)
            cuda_graph = False
        # one cached plan (and CUDA graph) per batch size: keep all of them
        self.context = self.engine.create_execution_context(
            use_cuda_graph=gpu if cuda_graph is None else cuda_graph,
            graph_cache_size=max(8, self.spec.max_batch + 1))
        self.staging = Staging(self.engine, self.context, self.spec)
        self.metrics = Metrics()
        self._lock = threading.Lock()  # one context: engine calls run one at a time
        self.on_batch = None  # callable(rows, requests, seconds) after each engine call (Ray metrics)
        self.warmed = self.warm_up(warmup or knobs().serve_warmup or ("all" if gpu else "none"))

    def warm_up(self, which: str) -> list:
        """Run each batch size of `which` once (zeros), so no request pays a size's first call. Session 11 on
        the H200 (ResNet-50 FP16 behind Ray Serve): a batch size's first call took ~0.3-0.4 s (its plan, CUDA
        graph capture, kernel loads) and the dynamic batcher made ~40 distinct sizes, so 17.6 of the 22 s of
        a 3000-request run were first calls; Triton's 27 batches of that run were mostly first calls too.
        Returns the sizes run."""
        if which not in WARMUP:
            raise ValueError(f"warmup must be one of {', '.join(WARMUP)}, not {which!r}")
        if which == "none" or not self.staging.usable:
            return []
        top = self.spec.max_batch
        sizes = list(range(max(1, self.spec.min_batch), top + 1)) if which == "all" else \
            sorted({b for b in (1 << i for i in range(top.bit_length())) if b >= self.spec.min_batch} | {top})
        t0 = time.perf_counter()
        for b in sizes:
            feed = {s.name: np.zeros((b, *s.shape[1:]), dtype=np_dtype(s)) for s in self.spec.inputs}
            with self._lock:
                self.staging.run_parts([feed], b)
        log.info("warmed up batch sizes %d..%d (%d sizes) in %.1f s", sizes[0], sizes[-1], len(sizes),
                 time.perf_counter() - t0)
        return sizes

    def validate(self, feed: dict) -> int:
        """Rows of a request, or RequestError (4xx)."""
        rows = batch_of(self.spec, feed)
        if self.spec.batched and rows > self.spec.max_batch:
            raise RequestError(f"batch {rows} exceeds the server's max batch {self.spec.max_batch}")
        return rows

    def _call(self, feed: dict) -> dict:
        # arrays deserialized by Ray are read-only views; torch wants writable memory
        feed = {n: a if a.flags.writeable else a.copy() for n, a in feed.items()}
        with self._lock:  # engines without fixed I/O shapes (no staging buffers)
            out = self.context.infer(feed)
        return {n: t.detach().cpu().numpy() for n, t in out.items()}

    def run_many(self, feeds: list) -> list:
        """Results for validated requests, in order: dicts of arrays, or exceptions to raise per request."""
        rows = [self.validate(f) for f in feeds]
        results = [None] * len(feeds)
        for chunk in batching.plan_chunks(self.spec, feeds, rows):
            sub = [feeds[i] for i in chunk]
            sub_rows = [rows[i] for i in chunk]
            for i, r in zip(chunk, self._run_chunk(sub, sub_rows)):
                results[i] = r
        return results

    def _run_chunk(self, feeds: list, rows: list) -> list:
        t0 = time.perf_counter()
        real = sum(rows) if self.spec.batched else 1
        try:
            if self.staging.usable:  # each request's rows go straight into the staging buffers
                with self._lock:
                    out = self.staging.run_parts(feeds, max(real, self.spec.min_batch))
            else:
                out = self._call(batching.merge(self.spec, feeds)[0])
        except Exception as e:  # noqa: BLE001 - isolate the culprit below
            if len(feeds) == 1:
                log.warning("engine failed on a request: %s", _one_line(e))
                self.metrics.record_failure()
                return [EngineFailure(_one_line(e))]
            log.warning("engine failed on a batch of %d requests (%s); retrying them one by one",
                        len(feeds), _one_line(e))
            return [r for f, b in zip(feeds, rows) for r in self._run_chunk([f], [b])]
        dt = time.perf_counter() - t0
        self.metrics.record_batch(real, len(feeds), dt)
        if self.on_batch is not None:
            self.on_batch(real, len(feeds), dt)
        return batching.split(self.spec, out, rows)

    def infer(self, feed: dict) -> dict:
        """One request, synchronously (also the reference path of the tests)."""
        r = self.run_many([feed])[0]
        if isinstance(r, Exception):
            raise r
        return r


class Staging:
    """I/O buffers at the max batch, bound as views of fixed addresses: a batch of b rows reuses the
    plan (and CUDA graph) of batch size b instead of re-planning for new buffer addresses.

    On a GPU, pinned host buffers of the same size stand between the requests and the device buffers:
    run_parts copies each request's rows into them once (no merged array, no copy of a read-only Ray
    array) and moves the batch in one pinned copy each way. On the CPU the engine's buffers are the host
    buffers. Derived, not yet measured: a batch of 128 ResNet-50 images (77 MB) was merged by
    np.concatenate (~10 ms on one core) and copied from pageable memory (~10 ms), against 3.5 ms of engine."""

    def __init__(self, engine, context, spec: ServeSpec):
        import torch
        self.context = context
        self.torch = torch
        static = all(d != -1 for s in (*spec.inputs, *spec.outputs) for d in s.shape[1:])
        self.usable = spec.batched and static
        gpu = engine.device.type == "cuda"
        self.stream = torch.cuda.Stream(engine.device) if gpu else None
        self.bufs, self.pinned, self.host = {}, {}, {}
        if self.usable:
            from .. import dtypes
            for s in (*spec.inputs, *spec.outputs):
                shape, dt = (spec.max_batch, *s.shape[1:]), dtypes.to_torch(s.dtype)
                self.bufs[s.name] = torch.empty(shape, dtype=dt, device=engine.device)
                self.pinned[s.name] = torch.empty(shape, dtype=dt, pin_memory=True) if gpu else self.bufs[s.name]
                self.host[s.name] = self.pinned[s.name].numpy()  # the same memory, filled row by row
        self.inputs = [s.name for s in spec.inputs]
        self.outputs = [s.name for s in spec.outputs]

    def run_parts(self, feeds: list, rows: int) -> dict:
        """Run the requests' rows (validated, in order) as one batch of `rows` rows (padded by repeating
        the last row up to it, the profile's min); the outputs are arrays of their own."""
        torch, ctx = self.torch, self.context
        at = 0
        for f in feeds:
            b = next(iter(f.values())).shape[0]
            for n in self.inputs:
                self.host[n][at:at + b] = f[n]
            at += b
        for n in self.inputs:
            if at < rows:
                self.host[n][at:rows] = self.host[n][at - 1:at]
        with torch.cuda.stream(self.stream) if self.stream is not None else contextlib.nullcontext():
            for n in self.inputs:
                view = self.bufs[n][:rows]
                if self.stream is not None:
                    view.copy_(self.pinned[n][:rows], non_blocking=True)
                ctx.set_input_shape(n, tuple(view.shape))
                ctx.set_tensor_address(n, view)
            for n in self.outputs:
                ctx.set_tensor_address(n, self.bufs[n][:rows])
            ctx.execute_async(self.stream)
            if self.stream is not None:
                for n in self.outputs:
                    self.pinned[n][:rows].copy_(self.bufs[n][:rows], non_blocking=True)
        if self.stream is not None:
            self.stream.synchronize()
        return {n: self.host[n][:rows].copy() for n in self.outputs}  # the buffers are the next batch's


def _one_line(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0] if msg else ''}"[:500]


def as_arrays(feed: dict) -> dict:
    """Python-handle clients may send torch tensors or lists: make numpy arrays (no dtype guessing
    for arrays; lists take the engine's dtype later in codec)."""
    return {k: (v.detach().cpu().numpy() if hasattr(v, "detach") else v) if not isinstance(v, np.ndarray)
            else v for k, v in feed.items()}
