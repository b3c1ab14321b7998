"""The Ray Serve replica class: one engine per replica, dynamic batching with @serve.batch.

Imported only where Ray is installed (tensorforge.serve.ray_deployment imports it lazily)."""
from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor

from ray import serve
from ray.serve import metrics as ray_metrics
from starlette.responses import JSONResponse, Response

from . import codec
from .runner import EngineFailure, Runner, as_arrays
from .spec import RequestError

ROW_BOUNDARIES = [1, 2, 4, 8, 16, 32, 64, 128, 256]
LATENCY_BOUNDARIES_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]


def _rows(items: list) -> int:
    """@serve.batch's batch size: rows, not requests (a request of batch b occupies b rows)."""
    return sum(rows for _, rows in items)


class EngineServer:
    """A replica: validates requests, batches them (@serve.batch), runs them in a worker thread."""

    def __init__(self, engine_path: str, max_batch: int | None = None, max_wait_ms: float = 5.0):
        self.runner = Runner(engine_path, max_batch=max_batch)
        spec = self.runner.spec
        # @serve.batch counts rows (batch_size_fn): a batch never exceeds the profile's max batch
        self.batched.set_max_batch_size(spec.max_batch if spec.batched else 1)
        self.batched.set_batch_wait_timeout_s(max_wait_ms / 1e3)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="engine")  # the event loop keeps queueing
        self._requests = ray_metrics.Counter("tensorforge_requests", "requests answered",
                                             tag_keys=("status",))
        self._rows = ray_metrics.Histogram("tensorforge_batch_rows", "rows per engine call",
                                           boundaries=ROW_BOUNDARIES)
        self._latency = ray_metrics.Histogram("tensorforge_latency_ms", "request latency (ms)",
                                              boundaries=LATENCY_BOUNDARIES_MS)
        self.runner.on_batch = lambda rows, requests, seconds: self._rows.observe(rows)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005, batch_size_fn=_rows)
    async def batched(self, items: list) -> list:
        """One @serve.batch batch of (feed, rows) -> engine calls; one result (or exception) per request."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.runner.run_many, [f for f, _ in items])

    async def infer(self, feed: dict) -> dict:
        """Python-handle entry point: {input: array} -> {output: array}; raises RequestError/EngineFailure."""
        t0 = time.perf_counter()
        feed = as_arrays(feed)
        try:
            rows = self.runner.validate(feed)
        except RequestError:
            self._count(t0, "bad")
            raise
        r = await self.batched((feed, rows))
        if isinstance(r, Exception):
            self._count(t0, "failed")
            raise r
        self._count(t0, "ok")
        return r

    def _count(self, t0: float, status: str) -> None:
        ms = (time.perf_counter() - t0) * 1e3
        self.runner.metrics.record_request(ms, ok=status == "ok", bad=status == "bad")
        self._requests.inc(tags={"status": status})
        if status == "ok":
            self._latency.observe(ms)

    def metrics(self) -> dict:
        return self.runner.metrics.snapshot()

    def describe(self) -> dict:
        s = self.runner.spec
        io = lambda t: {"name": t.name, "dtype": t.dtype, "shape": list(t.shape)}  # noqa: E731
        return {"inputs": [io(t) for t in s.inputs], "outputs": [io(t) for t in s.outputs],
                "batched": s.batched, "min_batch": s.min_batch, "max_batch": s.max_batch}

    async def __call__(self, request) -> Response:
        """HTTP: POST / (or /infer) runs a request; GET /metrics and GET / describe the server."""
        path = request.url.path.rstrip("/")
        if request.method == "GET":
            return JSONResponse(self.metrics() if path.endswith("/metrics") else self.describe())
        if request.method != "POST":
            return _error(405, f"method {request.method} not allowed (POST a request, GET /metrics)")
        t0 = time.perf_counter()
        body = await request.body()
        try:
            feed = codec.decode(self.runner.spec, body)
            rows = self.runner.validate(feed)
        except RequestError as e:
            self._count(t0, "bad")
            return _error(e.status, str(e))
        r = await self.batched((feed, rows))
        if isinstance(r, EngineFailure):
            self._count(t0, "failed")
            return _error(500, f"engine failure: {r}")
        self._count(t0, "ok")
        if codec.is_numpy(body):
            return Response(codec.encode_npz(r), media_type=codec.NPZ_TYPE)
        return Response(codec.encode_json(r), media_type="application/json")


def _error(status: int, message: str) -> Response:
    return Response(json.dumps({"error": message.splitlines()[0] if message else ""}), status_code=status,
                    media_type="application/json")
