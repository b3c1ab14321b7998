"""Dynamic shapes: profile validation, shape errors, symbolic propagation on the zoo, one engine serving
several shapes (vs ONNX Runtime), shape-tensor inputs, re-planning only on shape/profile change."""
import numpy as np
import pytest
import torch

import tensorforge as tf
from tensorforge import frontend, zoo
from tensorforge.errors import ShapeError, TensorforgeError
from tensorforge.ir.symbolic import free_symbols
from tensorforge.runtime.engine import Engine
from tensorforge.testing import assert_close, rand, run_ort

from ..core.models import conv_net
from .models import shape_tensor_model, with_dynamic_dims

ZOO_SMALL = ["resnet50_small", "bert_base_small", "yolo_det_small", "gpt2_small_small", "vit_b16_small"]


def _build(model, **kw):
    return tf.Builder(tf.BuilderConfig(device="cpu", **kw)).build(model)


def _profile(name, mn, op, mx):
    p = tf.OptimizationProfile()
    p.set_shape(name, mn, op, mx)
    return p


def _numpy(out):
    return {k: v.numpy() for k, v in out.items()}


def _close(got, ref):
    """fp32 vs ORT: 1e-4 relative to each output's largest magnitude (conv stacks reorder sums)."""
    for k, r in ref.items():
        np.testing.assert_allclose(got[k].numpy(), r, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(r).max())),
                                   err_msg=k)


# ---- profile validation ------------------------------------------------------------------------------
def test_profile_min_opt_max_order_and_rank():
    p = tf.OptimizationProfile()
    with pytest.raises(ShapeError, match="min <= opt <= max"):
        p.set_shape("x", (1, 3), (4, 3), (2, 3))
    with pytest.raises(ShapeError, match="different ranks"):
        p.set_shape("x", (1, 3), (1, 3, 1), (1, 3))
    with pytest.raises(ShapeError, match="min <= opt <= max"):
        p.set_shape_input("s", (1, 4), (2, 2), (3, 3))
    with pytest.raises(ShapeError, match="positive"):
        p.set_shape_input("s", (0, 1), (1, 1), (2, 2))


def test_profile_missing_dynamic_input_and_rank_mismatch():
    other = tf.OptimizationProfile()
    other.set_shape("x", (1, 3, 16, 16), (1, 3, 16, 16), (2, 3, 16, 16))
    with pytest.raises(ShapeError, match=r"profile 1: no shapes for dynamic input 'x'"):
        _build(conv_net(), profiles=[other, tf.OptimizationProfile()])
    with pytest.raises(ShapeError, match="rank 4, profile gives 3"):
        _build(conv_net(), profiles=[_profile("x", (1, 3, 16), (1, 3, 16), (1, 3, 16))])
    with pytest.raises(ShapeError, match="static dim 16 given as 8"):
        _build(conv_net(), profiles=[_profile("x", (1, 3, 8, 16), (1, 3, 16, 16), (1, 3, 16, 16))])


def test_shape_errors_at_run_time():
    eng = _build(conv_net(), profiles=[_profile("x", (1, 3, 16, 16), (4, 3, 16, 16), (8, 3, 16, 16)),
                                       _profile("x", (16, 3, 16, 16), (16, 3, 16, 16), (32, 3, 16, 16))])
    assert eng.num_profiles == 2
    ctx = eng.create_execution_context()
    with pytest.raises(ShapeError, match="outside optimization profile 0 .min 1x3x16x16, max 8x3x16x16"):
        ctx.set_input_shape("x", (16, 3, 16, 16))
    ctx.set_optimization_profile(1)
    ctx.set_input_shape("x", (16, 3, 16, 16))
    with pytest.raises(ShapeError, match="outside optimization profile 1"):
        ctx.set_input_shape("x", (4, 3, 16, 16))
    with pytest.raises(ShapeError, match="profile 2 does not exist"):
        ctx.set_optimization_profile(2)
    with pytest.raises(ShapeError, match="negative dim"):
        _build(conv_net()).create_execution_context().set_input_shape("x", (-1, 3, 16, 16))


# ---- symbolic shapes ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ZOO_SMALL)
def test_symbolic_shapes_propagate_on_zoo(name):
    g = frontend.load(zoo.get_model(name))
    for v in g.outputs:
        assert "N" in free_symbols(v.shape), f"{v.name}: {v.shape}"
        assert str(v.shape[0]) == "N"
    dyn = [v for v in g.values.values() if v.shape is not None and free_symbols(v.shape)]
    assert len(dyn) > 5  # the batch symbol reached the whole graph (no per-size rebuild)


def test_symbolic_batch_and_sequence_on_bert():
    m = with_dynamic_dims(zoo.get_model("bert_base_small"), {"input_ids": {1: "S"}, "attention_mask": {1: "S"}},
                          {"last_hidden_state": {1: "S"}})
    g = frontend.load(m)
    out = {v.name: v.shape for v in g.outputs}
    assert [str(d) for d in out["last_hidden_state"]] == ["N", "S", "64"]
    assert [str(d) for d in out["pooler_output"]] == ["N", "64"]


# ---- one engine, several shapes -----------------------------------------------------------------------
@pytest.mark.parametrize("name,sizes", [("resnet50_small", (1, 4, 2)), ("yolo_det_small", (1, 3))])
def test_one_engine_serves_several_batch_sizes(name, sizes):
    m = zoo.get_model(name)
    spec = next(iter(zoo.input_specs(name).values()))[1]
    eng = _build(m, profiles=[_profile(next(iter(zoo.input_specs(name))), [1] + spec[1:], [2] + spec[1:],
                                       [4] + spec[1:])])
    ctx = eng.create_execution_context()
    for bs in sizes:
        feed = zoo.random_inputs(name, bs, seed=bs)
        _close(ctx.infer(feed), run_ort(m, feed))
    assert ctx.replans == len(sizes)


def test_bert_small_dynamic_batch_and_sequence():
    m = with_dynamic_dims(zoo.get_model("bert_base_small"), {"input_ids": {1: "S"}, "attention_mask": {1: "S"}},
                          {"last_hidden_state": {1: "S"}})
    prof = tf.OptimizationProfile()
    for n in ("input_ids", "attention_mask"):
        prof.set_shape(n, (1, 4), (2, 16), (4, 32))
    ctx = _build(m, profiles=[prof]).create_execution_context()
    rng = np.random.default_rng(0)
    for bs, seq in ((2, 16), (1, 5), (3, 32), (4, 9)):
        ids = rng.integers(0, 1000, (bs, seq)).astype(np.int64)
        mask = np.ones((bs, seq), np.int64)
        mask[:, seq - 1:] = 0
        feed = {"input_ids": ids, "attention_mask": mask}
        _close(ctx.infer(feed), run_ort(m, feed))
    with pytest.raises(ShapeError, match="outside optimization profile"):
        ctx.set_input_shape("input_ids", (2, 33))


# ---- re-planning cost ----------------------------------------------------------------------------------
def test_repeated_shape_does_not_replan_and_profile_switch_replans_once():
    eng = _build(conv_net(), profiles=[_profile("x", (1, 3, 16, 16), (2, 3, 16, 16), (4, 3, 16, 16)),
                                       _profile("x", (1, 3, 16, 16), (8, 3, 16, 16), (8, 3, 16, 16))])
    ctx = eng.create_execution_context()
    x = torch.from_numpy(rand((2, 3, 16, 16), seed=1))
    y = torch.empty(2, 10)
    ctx.set_input_shape("x", (2, 3, 16, 16))
    ctx.set_tensor_address("x", x)
    ctx.set_tensor_address("y", y)
    for _ in range(3):
        ctx.execute_async()
    assert ctx.replans == 1
    ctx.set_optimization_profile(1)  # 2x3x16x16 is inside profile 1 too: shapes are kept
    for _ in range(3):
        ctx.execute_async()
    assert ctx.replans == 2
    ref = run_ort(conv_net(), {"x": x.numpy()})["y"]
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-5, atol=1e-5)
    for bs in (2, 3, 3, 2):  # infer(): same shape -> same buffers -> no re-plan
        ctx.infer({"x": rand((bs, 3, 16, 16))})
    assert ctx.replans == 5


def test_recent_shape_sets_keep_their_plans():
    eng = _build(conv_net(), profiles=[_profile("x", (1, 3, 16, 16), (2, 3, 16, 16), (4, 3, 16, 16))])
    ctx = eng.create_execution_context(graph_cache_size=2)
    bufs = {bs: (torch.from_numpy(rand((bs, 3, 16, 16), seed=bs)), torch.empty(bs, 10)) for bs in (1, 2, 4)}
    for bs in (1, 2, 1, 2, 1, 4, 1, 2):  # 4 evicts 2 (LRU of 2): 2 is planned again at the end
        x, y = bufs[bs]
        ctx.set_input_shape("x", tuple(x.shape))
        ctx.set_tensor_address("x", x)
        ctx.set_tensor_address("y", y)
        ctx.execute_async()
        np.testing.assert_allclose(y.numpy(), run_ort(conv_net(), {"x": x.numpy()})["y"], rtol=1e-5, atol=1e-5)
    assert ctx.replans == 4 and len(ctx._plans) == 2


def test_profile_switch_drops_shapes_outside_new_profile():
    eng = _build(conv_net(), profiles=[_profile("x", (1, 3, 16, 16), (2, 3, 16, 16), (4, 3, 16, 16)),
                                       _profile("x", (8, 3, 16, 16), (8, 3, 16, 16), (8, 3, 16, 16))])
    ctx = eng.create_execution_context()
    ctx.set_input_shape("x", (2, 3, 16, 16))
    ctx.set_optimization_profile(1)
    assert not ctx.all_shapes_specified
    with pytest.raises(ShapeError, match="input shape not set for x"):
        ctx.execute_async()


# ---- shape-tensor inputs -------------------------------------------------------------------------------
def _shape_engine():
    prof = tf.OptimizationProfile()
    prof.set_shape("x", (1, 12), (2, 12), (4, 12))
    prof.set_shape_input("s", (1, 1), (4, 6), (48, 48))
    prof.set_shape_input("e", (1, 3), (2, 3), (8, 3))
    return _build(shape_tensor_model(), profiles=[prof])


def test_shape_tensor_inputs_serve_many_values():
    eng = _shape_engine()
    assert eng.is_shape_inference_io("s") and eng.is_shape_inference_io("e")
    assert not eng.is_shape_inference_io("x")
    assert eng.get_tensor_profile_values(0, "s") == ((1, 1), (4, 6), (48, 48))
    assert eng.plan.tensors["y"].shape == ["s_v0", "s_v1"]
    ctx = eng.create_execution_context()
    m = shape_tensor_model()
    b = rand((1, 3), seed=2)
    for n, s, e in ((2, (4, 6), (2, 3)), (2, (3, 8), (5, 3)), (3, (36, 1), (5, 3)), (3, (36, 1), (5, 3))):
        feed = {"x": rand((n, 12), seed=n), "s": np.array(s, np.int64), "b": b, "e": np.array(e, np.int64)}
        assert_close(_numpy(ctx.infer(feed)), run_ort(m, feed))
    assert ctx.replans == 3  # the repeated value set re-used its plan


def test_shape_tensor_low_level_api_and_errors():
    eng = Engine.deserialize(_shape_engine().serialize())  # values survive the engine file
    ctx = eng.create_execution_context()
    ctx.set_input_shape("x", (2, 12))
    ctx.set_input_shape("s", (2,))
    ctx.set_input_shape("e", (2,))
    with pytest.raises(ShapeError, match="values of shape tensor input 's' not set"):
        ctx.get_tensor_shape("y")
    ctx.set_tensor_address("s", torch.tensor([3, 8]))  # host memory, as TensorRT requires
    ctx.set_shape_input("e", [4, 3])
    assert ctx.get_tensor_shape("y") == (3, 8) and ctx.get_tensor_shape("z") == (4, 3)
    x, b = torch.from_numpy(rand((2, 12))), torch.from_numpy(rand((1, 3), seed=3))
    y, z = torch.empty(3, 8), torch.empty(4, 3)
    for k, v in (("x", x), ("b", b), ("y", y), ("z", z)):
        ctx.set_tensor_address(k, v)
    ctx.execute_async()
    torch.testing.assert_close(y, x.relu().reshape(3, 8))
    torch.testing.assert_close(z, b.expand(4, 3))
    ctx.set_shape_input("s", [50, 1])
    with pytest.raises(ShapeError, match="values .50, 1. are outside optimization profile 0"):
        ctx.execute_async()
    ctx.set_shape_input("s", [5, 5])
    ctx.set_tensor_address("y", torch.empty(5, 5))
    with pytest.raises(TensorforgeError, match="layer 'reshape' failed"):
        ctx.execute_async()
    with pytest.raises(ShapeError, match="not a shape tensor input"):
        ctx.set_shape_input("x", [1])


def test_shape_tensor_profile_validation():
    m = shape_tensor_model()
    with pytest.raises(ShapeError, match="need an optimization profile"):
        _build(m)
    prof = tf.OptimizationProfile()
    prof.set_shape("x", (1, 12), (2, 12), (4, 12))
    prof.set_shape_input("s", (1, 1), (4, 6), (48, 48))
    with pytest.raises(ShapeError, match="no values for shape tensor input 'e'"):
        _build(m, profiles=[prof])
    prof.set_shape_input("e", (1,), (2,), (3,))
    with pytest.raises(ShapeError, match="'e' has 2 values, profile gives 1"):
        _build(m, profiles=[prof])
    prof.set_shape_input("e", (1, 3), (2, 3), (8, 3))
    prof.set_shape_input("x", (1,), (1,), (1,))
    with pytest.raises(ShapeError, match="'x' is not a shape tensor input"):
        _build(m, profiles=[prof])
