"""Quantization-aware checks for `tensorforge compare`: a Q/DQ model is compared with ONNX Runtime
running the same Q/DQ graph (the fake-quant reference) by cosine and top-1 agreement, since a
correct INT8/FP8 engine may differ from it by a few quantization steps (summation order flips ties)."""
from __future__ import annotations

import numpy as np

MIN_COSINE = 0.999
MIN_TOP1 = 0.9


def top1(got: np.ndarray, ref: np.ndarray) -> float | None:
    """Fraction of rows whose argmax over the last dim agrees (None for outputs without classes)."""
    if ref.ndim < 2 or ref.shape[-1] < 2 or not np.issubdtype(ref.dtype, np.floating):
        return None
    return float((got.reshape(-1, ref.shape[-1]).argmax(1) == ref.reshape(-1, ref.shape[-1]).argmax(1)).mean())


def verdict(stats: dict, got, ref, min_cosine: float = MIN_COSINE, min_top1: float = MIN_TOP1):
    """(passed, text) of one output of a quantized model."""
    t = top1(got, ref)
    ok = stats["cosine"] >= min_cosine and (t is None or t >= min_top1) and stats["nan"] == stats["ref_nan"]
    text = f"quantized: cosine >= {min_cosine}" + ("" if t is None else f", top-1 agreement {t:.4f} >= {min_top1}")
    return ok, text
