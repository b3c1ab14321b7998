"""Nearest Resizes fused into their readers on CUDA (3 into pointwise Adds, 3 into the head's Concat):
a DB-style FPN neck built with the Triton pointwise kernel forced and with timed selection, FP32 and
FP16, against ONNX Runtime (CPU FP32)."""
import numpy as np
import pytest

import tensorforge as tf
from tensorforge.testing import run_ort
from tests.passes.fpn_model import fpn_model

TRITON_ONLY = ["-CUBLAS", "-CUBLAS_LT", "-CUDNN", "-ATEN"]  # triton tactics where they apply, else the reference


def _check(m, feed, cfg, tol):
    eng = tf.Builder(cfg).build(m)
    got = eng.create_execution_context().infer(feed)["y"].float().cpu().numpy()
    np.testing.assert_allclose(got, run_ort(m, feed)["y"], rtol=tol, atol=tol)
    return eng


CONFIGS = {"triton": {"opt_level": 0, "tactic_sources": TRITON_ONLY},  # Concat: its reference (ATEN off)
           "level0": {"opt_level": 0},  # the first candidates: triton pointwise, aten concat_copy
           "timed": {}}


@pytest.mark.fast(config="triton", fp16=False)
@pytest.mark.parametrize("fp16", [False, True])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_fpn_neck_on_cuda_matches_ort(config, fp16):
    m, feed = fpn_model(c=16, size=64)
    cfg = tf.BuilderConfig(device="cuda", tf32=False, fp16=fp16, **CONFIGS[config])
    eng = _check(m, feed, cfg, 2e-2 if fp16 else 1e-4)
    fused = [lay for lay in eng.plan.layers if lay.attrs.get("upsample")]
    assert [lay.type for lay in fused] == ["fused.Pointwise"] * 3 + ["fused.Concat"]
    assert not any(lay.type == "Resize" for lay in eng.plan.layers)
    if config != "timed":
        assert all(lay.tactic.get("source") == "triton" for lay in fused[:3])
        assert fused[3].tactic["name"] == ("reference" if config == "triton" else "concat_copy")


@pytest.mark.parametrize("coord,nm", [("half_pixel", "round_prefer_floor"), ("pytorch_half_pixel", "round_prefer_ceil")])
def test_fpn_neck_other_coordinate_modes(coord, nm):
    m, feed = fpn_model(c=8, size=32, coord=coord, nearest_mode=nm)
    cfg = tf.BuilderConfig(device="cuda", tf32=False, opt_level=0, tactic_sources=TRITON_ONLY)
    eng = _check(m, feed, cfg, 1e-4)
    assert sum(bool(lay.attrs.get("upsample")) for lay in eng.plan.layers) == 4
