"""Calibrators: from the values a tensor took on calibration data to its amax (scale = amax/qmax).

max: the largest |x|. percentile: that percentile of |x|. entropy: TensorRT's entropy calibrator
(KL divergence between the 2048-bin |x| histogram and its 128-level quantization, the threshold
that minimizes it). mse: the threshold minimizing the mean squared quantization error."""
from __future__ import annotations

import numpy as np

BINS = 2048


class Collector:
    """Running |x| statistics of one tensor: max and a histogram over [0, max] (re-binned as max grows)."""

    def __init__(self, bins: int = BINS):
        self.bins, self.amax, self.hist, self.samples = bins, 0.0, None, []

    def add(self, x) -> None:
        a = np.abs(np.asarray(x, np.float64)).ravel()
        if a.size == 0:
            return
        m = float(a.max())
        if self.hist is None or m > self.amax:
            old_edges = None if self.hist is None else np.linspace(0, self.amax, self.bins + 1)
            old = self.hist
            self.amax = max(m, self.amax, 1e-12)
            self.hist = np.zeros(self.bins)
            if old is not None:  # re-bin the old counts at their bin centres
                centres = (old_edges[:-1] + old_edges[1:]) / 2
                self.hist += np.histogram(centres, self.bins, (0, self.amax), weights=old)[0]
        self.hist += np.histogram(a, self.bins, (0, self.amax))[0]
        if sum(s.size for s in self.samples) < 1 << 20:  # a sample for mse
            self.samples.append(a[:: max(1, a.size // 65536)].astype(np.float32))


def amax_max(c: Collector, **_) -> float:
    return c.amax


def amax_percentile(c: Collector, percentile: float = 99.99, **_) -> float:
    cdf = np.cumsum(c.hist) / max(c.hist.sum(), 1)
    i = int(np.searchsorted(cdf, percentile / 100.0))
    return float((i + 1) * c.amax / c.bins)


def amax_entropy(c: Collector, levels: int = 128, start: int = 128, max_clipped: float = 1e-3, **_) -> float:
    """TensorRT entropy calibration: the clip threshold i·w minimizing KL(P || Q) over i >= 128,
    among thresholds that clip at most `max_clipped` of the values (a guard: on saturated ReLU6
    outputs, a spike at 6, the KL minimum alone clips the spike to a 16th of the range)."""
    hist = c.hist
    best, best_i = np.inf, len(hist)
    nz_total = hist.sum()
    if nz_total == 0:
        return c.amax
    tail = nz_total - np.cumsum(hist)  # values above bin i's upper edge
    first = int(np.argmax(tail <= max_clipped * nz_total)) + 1
    for i in range(max(start, first), len(hist) + 1, 16 if len(hist) > 512 else 1):
        p = hist[:i].copy()
        p[i - 1] += hist[i:].sum()  # clipped outliers fold into the last bin
        nz = hist[:i] != 0
        chunks = np.array_split(np.arange(i), levels)
        q = np.zeros(i)
        for ch in chunks:  # expand each quantized level uniformly over its nonzero bins
            n = nz[ch].sum()
            if n:
                q[ch] = np.where(nz[ch], hist[:i][ch].sum() / n, 0)
        ps, qs = p / p.sum(), q / max(q.sum(), 1e-30)
        m = ps > 0
        kl = float(np.sum(ps[m] * np.log(ps[m] / np.maximum(qs[m], 1e-30))))
        if kl < best:
            best, best_i = kl, i
    return float(best_i * c.amax / len(hist))


def amax_mse(c: Collector, qmax: float = 127.0, **_) -> float:
    """The amax among candidate clips (fractions of max) with the smallest quantize-dequantize MSE."""
    x = np.concatenate(c.samples) if c.samples else np.zeros(1, np.float32)
    best, best_a = np.inf, c.amax
    for f in np.geomspace(1e-3, 1.0, 120):
        a = c.amax * f
        s = a / qmax
        err = float(np.mean((np.clip(np.round(x / s), -qmax, qmax) * s - x) ** 2))
        if err < best:
            best, best_a = err, a
    return float(best_a)


CALIBRATORS = {"max": amax_max, "entropy": amax_entropy, "percentile": amax_percentile, "mse": amax_mse}
