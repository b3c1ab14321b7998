"""Runs batches of validated requests on one engine context; a failing request fails alone."""
from __future__ import annotations

import logging
import threading
import time

import numpy as np

from . import batching
from .metrics import Metrics
from .spec import RequestError, ServeSpec, batch_of, from_engine

log = logging.getLogger("tensorforge.serve")


class EngineFailure(Exception):
    """The engine raised while running a request (answered 500; batch-mates are unaffected)."""


class Runner:
    """One engine and one execution context (one per replica / Triton instance); thread-safe."""

    def __init__(self, engine_path: str, device=None, max_batch: int | None = None):
        from ..runtime import Engine  # the runtime only: no optimizer, onnx or sympy in a server
        self.engine = Engine.load(engine_path, device=device)
        self.spec: ServeSpec = from_engine(self.engine, max_batch)
        self.context = self.engine.create_execution_context()
        self.metrics = Metrics()
        self._lock = threading.Lock()  # one context: engine calls run one at a time
        self.on_batch = None  # callable(rows, requests, seconds) after each engine call (Ray metrics)

    def validate(self, feed: dict) -> int:
        """Rows of a request, or RequestError (4xx)."""
        rows = batch_of(self.spec, feed)
        if self.spec.batched and rows > self.spec.max_batch:
            raise RequestError(f"batch {rows} exceeds the server's max batch {self.spec.max_batch}")
        return rows

    def _call(self, feed: dict) -> dict:
        # arrays deserialized by Ray are read-only views; torch wants writable memory
        feed = {n: a if a.flags.writeable else a.copy() for n, a in feed.items()}
        with self._lock:
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
        feed, real = batching.merge(self.spec, feeds)
        t0 = time.perf_counter()
        try:
            out = self._call(feed)
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


def _one_line(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0] if msg else ''}"[:500]


def as_arrays(feed: dict) -> dict:
    """Python-handle clients may send torch tensors or lists: make numpy arrays (no dtype guessing
    for arrays; lists take the engine's dtype later in codec)."""
    return {k: (v.detach().cpu().numpy() if hasattr(v, "detach") else v) if not isinstance(v, np.ndarray)
            else v for k, v in feed.items()}
