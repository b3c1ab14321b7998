"""Test inputs for garden models: uniform random data in each input's range, or a synthetic text page."""
from __future__ import annotations

import numpy as np


def text_page(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A light page with lines of random dark 5x7 glyphs, in [0, 1]: DB text detectors respond to it."""
    img = np.full((h, w), 0.92) + rng.uniform(-0.05, 0.05, (h, w))
    y = 8
    while y + 24 < h:
        s = int(rng.integers(2, 4))
        gh, gw = 7 * s, 5 * s
        x = int(rng.integers(4, 30))
        while x + gw < w - 4:
            if rng.random() < 0.15:  # word gaps
                x += gw
                continue
            glyph = (rng.random((7, 5)) < 0.45).repeat(s, 0).repeat(s, 1)
            img[y:y + gh, x:x + gw][glyph] = rng.uniform(0.0, 0.2)
            x += gw + s
        y += gh + int(rng.integers(6, 20))
    return img


def _text_batch(shape, spec, rng) -> np.ndarray:
    n, c, h, w = shape
    mean = np.asarray(spec.get("mean", [0.0] * c), dtype=np.float64)[:, None, None]
    std = np.asarray(spec.get("std", [1.0] * c), dtype=np.float64)[:, None, None]
    pages = [(np.stack([text_page(h, w, rng)] * c) - mean) / std for _ in range(n)]
    return np.stack(pages)


def feed_for(entry: dict, seed: int = 0) -> dict:
    """Inputs by name: a fixed `value`, a `text_page` pattern (normalized by mean/std), or uniform in `range`."""
    rng = np.random.default_rng(seed)
    feed = {}
    for name, spec in entry["inputs"].items():
        dtype = np.dtype(spec["dtype"])
        shape = tuple(spec["shape"])
        if "value" in spec:
            feed[name] = np.full(shape, spec["value"], dtype=dtype)
        elif spec.get("pattern") == "text_page":
            feed[name] = _text_batch(shape, spec, rng).astype(dtype)
        else:
            lo, hi = spec["range"]
            feed[name] = rng.uniform(lo, hi, size=shape).astype(dtype)
    return feed
