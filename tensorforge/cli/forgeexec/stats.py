"""trtexec statistics in float32: traces, per-query timings, min/max/mean/median/percentiles/CoV."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

F32 = np.float32
TRACE_FIELDS = ("enqStart", "enqEnd", "h2dStart", "h2dEnd", "computeStart", "computeEnd", "d2hStart", "d2hEnd")


@dataclass
class Trace:
    """One query: host enqueue times (ms since cpuStart) and device times (ms since gpuStart), float32."""

    stream: int
    enqStart: float
    enqEnd: float
    h2dStart: float
    h2dEnd: float
    computeStart: float
    computeEnd: float
    d2hStart: float
    d2hEnd: float

    def __post_init__(self):
        for name in TRACE_FIELDS:
            setattr(self, name, F32(getattr(self, name)))


@dataclass
class Timing:
    """Per-query durations in float32, as trtexec's InferenceTime."""

    enq: np.float32
    h2d: np.float32
    compute: np.float32
    d2h: np.float32

    def latency(self) -> np.float32:
        """H2D + compute + D2H, summed in float32."""
        return F32(F32(self.h2d + self.compute) + self.d2h)


def to_timing(t: Trace) -> Timing:
    """Turn a trace into per-query durations."""
    return Timing(F32(t.enqEnd - t.enqStart), F32(t.h2dEnd - t.h2dStart), F32(t.computeEnd - t.computeStart),
                  F32(t.d2hEnd - t.d2hStart))


@dataclass
class Result:
    """Statistics of one metric."""

    min: float
    max: float
    mean: float
    median: float
    percentiles: list = field(default_factory=list)
    coeff_var: float = 0.0


def percentile_index(p: float, n: int) -> int:
    """Index into n ascending values for percentile p: exclude=int((1-p/100)*n) in float32."""
    if not 0.0 <= p <= 100.0:
        raise ValueError("percentile is not in [0, 100]!")
    exclude = int(F32(F32(F32(1) - F32(F32(p) / F32(100))) * F32(n)))
    return max(n - 1 - exclude, 0)


def f32_sum(values) -> np.float32:
    """Sequential float32 sum (std::accumulate with a float accumulator)."""
    arr = np.asarray(values, dtype=F32)
    return F32(np.cumsum(arr, dtype=F32)[-1]) if arr.size else F32(0)


def median(sorted_values) -> np.float32:
    """Middle value, or the float32 mean of the two middle values for an even count."""
    n = len(sorted_values)
    if n == 0:
        return F32(np.inf)
    m = n // 2
    if n % 2:
        return F32(sorted_values[m])
    return F32(F32(F32(sorted_values[m - 1]) + F32(sorted_values[m])) / F32(2))


def coeff_var(values, mean) -> np.float32:
    """Population standard deviation over mean, in percent (float32)."""
    if len(values) == 0:
        return F32(0)
    if mean == 0:
        return F32(np.inf)
    d = np.asarray(values, dtype=F32) - F32(mean)
    acc = f32_sum(d * d)
    return F32(F32(np.sqrt(F32(acc / F32(len(values))))) / mean * F32(100))


def summarize(values, percentiles) -> Result:
    """Compute min/max/mean/median/percentiles/CoV of values as trtexec does."""
    vals = np.sort(np.asarray(values, dtype=F32))
    n = len(vals)
    mean = F32(f32_sum(vals) / F32(n))
    pct = [vals[percentile_index(p, n)] for p in percentiles]
    return Result(vals[0], vals[-1], mean, median(vals), pct, coeff_var(vals, mean))
