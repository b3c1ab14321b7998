"""Server metrics: request counts, batch-size histogram, latency percentiles (per replica)."""
from __future__ import annotations

import threading
from collections import Counter, deque

import numpy as np

LATENCY_WINDOW = 100_000  # most recent request latencies kept for percentiles


class Metrics:
    """Counters a replica keeps; snapshot() is what GET /metrics returns."""

    def __init__(self):
        self._lock = threading.Lock()
        self.requests = 0
        self.bad_requests = 0
        self.failures = 0
        self.engine_calls = 0
        self.rows = 0
        self.batch_rows = Counter()  # rows per engine call -> calls
        self.batch_requests = Counter()  # requests per engine call -> calls
        self.engine_s = 0.0
        self.latency_ms = deque(maxlen=LATENCY_WINDOW)

    def record_batch(self, rows: int, requests: int, seconds: float) -> None:
        with self._lock:
            self.engine_calls += 1
            self.rows += rows
            self.batch_rows[rows] += 1
            self.batch_requests[requests] += 1
            self.engine_s += seconds

    def record_failure(self) -> None:
        with self._lock:
            self.failures += 1

    def record_request(self, ms: float, ok: bool = True, bad: bool = False) -> None:
        with self._lock:
            self.requests += 1
            self.bad_requests += int(bad)
            if ok:
                self.latency_ms.append(ms)

    def snapshot(self) -> dict:
        with self._lock:
            lat = np.asarray(self.latency_ms, dtype=np.float64)
            pct = {f"p{q}": round(float(np.percentile(lat, q)), 3) for q in (50, 90, 99)} if lat.size else {}
            return {"requests": self.requests, "bad_requests": self.bad_requests,
                    "failed_requests": self.failures, "engine_calls": self.engine_calls, "rows": self.rows,
                    "mean_batch_rows": round(self.rows / self.engine_calls, 3) if self.engine_calls else 0.0,
                    "batch_rows_histogram": {str(k): v for k, v in sorted(self.batch_rows.items())},
                    "batch_requests_histogram": {str(k): v for k, v in sorted(self.batch_requests.items())},
                    "engine_ms_total": round(self.engine_s * 1e3, 3), "latency_ms": pct}
