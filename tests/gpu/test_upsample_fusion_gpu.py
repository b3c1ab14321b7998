"""Nearest Resize fused into its pointwise reader on CUDA: a DB-style FPN neck built with the Triton
pointwise kernel forced and with timed selection, against ONNX Runtime (CPU FP32)."""
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


@pytest.mark.fast(triton_only=True, fp16=False)
@pytest.mark.parametrize("fp16", [False, True])
@pytest.mark.parametrize("triton_only", [True, False])
def test_fpn_neck_on_cuda_matches_ort(triton_only, fp16):
    m, feed = fpn_model(c=16, size=64)
    kw = {"opt_level": 0, "tactic_sources": TRITON_ONLY} if triton_only else {}
    eng = _check(m, feed, tf.BuilderConfig(device="cuda", tf32=False, fp16=fp16, **kw), 2e-2 if fp16 else 1e-4)
    fused = [lay for lay in eng.plan.layers if lay.attrs.get("upsample")]
    assert len(fused) == 3 and sum(lay.type == "Resize" for lay in eng.plan.layers) == 3
    if triton_only:
        assert all(lay.tactic.get("source") == "triton" for lay in fused)


@pytest.mark.parametrize("coord,nm", [("half_pixel", "round_prefer_floor"), ("pytorch_half_pixel", "round_prefer_ceil")])
def test_fpn_neck_other_coordinate_modes(coord, nm):
    m, feed = fpn_model(c=8, size=32, coord=coord, nearest_mode=nm)
    cfg = tf.BuilderConfig(device="cuda", tf32=False, opt_level=0, tactic_sources=TRITON_ONLY)
    eng = _check(m, feed, cfg, 1e-4)
    assert sum(bool(lay.attrs.get("upsample")) for lay in eng.plan.layers) == 3
