"""The whole-engine no-regression rule on CUDA (builder.fp16_form): a Q/DQ model built at opt level 1 is timed
against its FP16 form by default (CUDA graphs), the faster engine is returned and the choice recorded, and either
engine answers as ONNX Runtime does on the Q/DQ model."""
import numpy as np
import pytest
import torch

import tensorforge as tf
from tensorforge.testing import rand, run_ort
from tests.builder.test_fp16_form import SHAPE, _cos, _quantized


@pytest.mark.fast(mode="int8")
@pytest.mark.parametrize("mode", ["int8", "fp8"])
def test_quantized_engine_is_timed_against_its_fp16_form(mode):
    if mode == "fp8" and torch.cuda.get_device_capability() < (8, 9):
        pytest.skip("FP8 needs sm_89+")
    m = _quantized(mode)
    eng = tf.Builder(tf.BuilderConfig(device="cuda", opt_level=1)).build(m)
    c = eng.plan.meta["engine_choice"]
    assert c["quantized_ms"] > 0 and c["fp16_form_ms"] > 0 and c["chosen"] in ("quantized", "fp16_form"), c
    quant = any(lay.type.startswith("fused.Q") for lay in eng.plan.layers)
    assert quant == (c["chosen"] == "quantized"), c
    feed = {"x": rand(SHAPE, seed=5)}
    got = eng.create_execution_context().infer({"x": torch.from_numpy(feed["x"]).cuda()})["y"].float().cpu().numpy()
    assert _cos(got, run_ort(m, feed)["y"]) > 0.995
    assert np.isfinite(got).all()
