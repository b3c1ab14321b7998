import numpy as np
import pytest
import torch
from onnx import TensorProto, helper

import tensorforge as tf
from tensorforge.errors import ShapeError, TensorforgeError, UnsupportedOpError
from tensorforge.testing import make_model, rand, run_ort

from .models import conv_net


def _build(model, **kw):
    return tf.Builder(tf.BuilderConfig(device="cpu", **kw)).build(model)


def test_low_level_api_matches_infer_and_ort():
    m = conv_net()
    eng = _build(m)
    ctx = eng.create_execution_context()
    x = torch.from_numpy(rand((2, 3, 16, 16), seed=3))
    y = torch.empty(2, 10)
    ctx.set_input_shape("x", (2, 3, 16, 16))
    assert ctx.get_tensor_shape("y") == (2, 10)
    ctx.set_tensor_address("x", x)
    ctx.set_tensor_address("y", y)
    ctx.execute_async(None)
    ref = run_ort(m, {"x": x.numpy()})["y"]
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ctx.infer({"x": x})["y"].numpy(), ref, rtol=1e-5, atol=1e-5)


def test_raw_host_pointers():
    eng = _build(conv_net())
    ctx = eng.create_execution_context()
    x = torch.from_numpy(rand((1, 3, 16, 16), seed=4))
    y = torch.full((1, 10), float("nan"))
    ctx.set_input_shape("x", (1, 3, 16, 16))
    ctx.set_tensor_address("x", x.data_ptr())
    ctx.set_tensor_address("y", y.data_ptr())
    ctx.execute_async()
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y, ctx.infer({"x": x})["y"])


def test_one_engine_serves_several_batch_sizes():
    m = conv_net()
    ctx = _build(m).create_execution_context()
    for bs in (1, 4, 2, 7):
        x = rand((bs, 3, 16, 16), seed=bs)
        np.testing.assert_allclose(ctx.infer({"x": x})["y"].numpy(), run_ort(m, {"x": x})["y"], rtol=1e-5, atol=1e-5)


def test_shape_errors():
    ctx = _build(conv_net()).create_execution_context()
    with pytest.raises(ShapeError, match="rank 3 given"):
        ctx.set_input_shape("x", (1, 3, 16))
    with pytest.raises(ShapeError, match="dim 2 is 15, engine requires 16"):
        ctx.set_input_shape("x", (1, 3, 15, 16))
    with pytest.raises(ShapeError, match="not an input"):
        ctx.set_input_shape("nope", (1,))
    with pytest.raises(TensorforgeError, match="missing input 'x'"):
        ctx.infer({})
    with pytest.raises(ShapeError, match="input shape not set"):
        ctx.execute_async()


def test_profile_range_enforced():
    prof = tf.OptimizationProfile()
    prof.set_shape("x", (1, 3, 16, 16), (4, 3, 16, 16), (8, 3, 16, 16))
    eng = _build(conv_net(), profiles=[prof])
    assert eng.get_profile_shape(0, "x") == ((1, 3, 16, 16), (4, 3, 16, 16), (8, 3, 16, 16))
    ctx = eng.create_execution_context()
    ctx.set_input_shape("x", (8, 3, 16, 16))
    with pytest.raises(ShapeError, match="outside optimization profile 0"):
        ctx.set_input_shape("x", (9, 3, 16, 16))
    with pytest.raises(ShapeError, match="min <= opt <= max"):
        tf.OptimizationProfile().set_shape("x", (4, 3, 16, 16), (2, 3, 16, 16), (8, 3, 16, 16))


def test_profile_validation_against_network():
    bad = tf.OptimizationProfile()
    bad.set_shape("x", (1, 3, 16), (1, 3, 16), (1, 3, 16))
    with pytest.raises(ShapeError, match="rank 4"):
        _build(conv_net(), profiles=[bad])
    other = tf.OptimizationProfile()
    other.set_shape("y", (1, 10), (1, 10), (1, 10))
    with pytest.raises(ShapeError, match="not a network input"):
        _build(conv_net(), profiles=[other])


def test_unsupported_op_error_names_op_node_and_list():
    m = make_model([helper.make_node("FancyOp", ["x"], ["y"], name="my_node", domain="com.example")],
                   [("x", TensorProto.FLOAT, [2])], [("y", TensorProto.FLOAT, [2])])
    m.opset_import.append(helper.make_opsetid("com.example", 1))
    with pytest.raises(UnsupportedOpError) as e:
        _build(m)
    msg = str(e.value)
    assert "FancyOp" in msg and "my_node" in msg and "tensorforge ops" in msg and "\n" not in msg


def test_missing_and_corrupt_model_files(tmp_path):
    with pytest.raises(TensorforgeError, match="model file not found"):
        _build(str(tmp_path / "nope.onnx"))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(TensorforgeError, match="not a valid ONNX model"):
        _build(str(bad))


def test_memory_plan_reuses_buffers():
    eng = _build(conv_net(), activation_memory="arena")
    meta = eng.plan.meta
    assert 0 < eng.device_memory_size < meta["activation_bytes_unshared"]


def test_external_data(tmp_path):
    import onnx
    m = conv_net()
    p = tmp_path / "ext.onnx"
    onnx.save_model(conv_net(), p, save_as_external_data=True, all_tensors_to_one_file=True, location="ext.bin",
                    size_threshold=0)
    assert (tmp_path / "ext.bin").exists()
    x = rand((2, 3, 16, 16))
    eng = _build(str(p))
    np.testing.assert_allclose(eng.create_execution_context().infer({"x": x})["y"].numpy(),
                               run_ort(m, {"x": x})["y"], rtol=1e-5, atol=1e-5)
    (tmp_path / "ext.bin").unlink()
    with pytest.raises(TensorforgeError, match="external data"):
        _build(str(p))


def test_direct_activation_memory_matches_arena():
    m = conv_net()
    x = rand((3, 3, 16, 16), seed=9)
    a = _build(m, activation_memory="arena")
    d = _build(m, activation_memory="direct")
    # device_memory_size: every activation planned in one arena, whatever the mode; direct mode keeps
    # only a part of it in the context's arena (kernels allocate the rest)
    assert d.device_memory_size == a.device_memory_size == a.plan.meta["arena_bytes"]
    assert d.plan.meta["arena_bytes"] < d.device_memory_size
    assert d.plan.meta["kernel_allocated_bytes"] > 0
    torch.testing.assert_close(a.create_execution_context().infer({"x": x})["y"],
                               d.create_execution_context().infer({"x": x})["y"], rtol=0, atol=0)


def test_direct_memory_views_into_the_arena_are_not_corrupted():
    """Split returns views of its input; in direct mode the input's arena buffer is reused later."""
    rng = np.random.default_rng(0)
    from onnx import numpy_helper
    w = numpy_helper.from_array(rng.standard_normal((4, 8)).astype(np.float32), "w")
    w2 = numpy_helper.from_array(rng.standard_normal((4, 4)).astype(np.float32), "w2")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Split", ["r"], ["a", "b"], axis=1, num_outputs=2),
             helper.make_node("MatMul", ["x", "w2"], ["h2"]),
             helper.make_node("Sigmoid", ["h2"], ["g"]),
             helper.make_node("Mul", ["a", "g"], ["m0"]),
             helper.make_node("Add", ["b", "m0"], ["y"])]
    m = make_model(nodes, [("x", TensorProto.FLOAT, [3, 4])], [("y", TensorProto.FLOAT, None)], [w, w2], opset=18)
    x = rand((3, 4), seed=2)
    ref = run_ort(m, {"x": x})["y"]
    for mode in ("arena", "direct"):
        got = _build(m, activation_memory=mode).create_execution_context().infer({"x": x})["y"]
        np.testing.assert_allclose(got.numpy(), ref, rtol=1e-5, atol=1e-6)
