"""Channels-last activation chains between NHWC tactics (layout plan + the kernels layout wrapper)."""
import numpy as np
import torch
from onnx import TensorProto, helper, numpy_helper

import tensorforge as tf
from tensorforge.kernels.layouts import logical, raw
from tensorforge.testing import assert_close, make_model, rand, run_ort

from .models import twin_convs


def _build(model, **kw):
    return tf.Builder(tf.BuilderConfig(device="cpu", opt_level=4, **kw)).build(model)


def _params(eng):
    return {lay.name: lay.tactic.get("params", {}) for lay in eng.plan.layers}


def test_raw_logical_round_trip():
    x = torch.randn(2, 3, 4, 5)
    nhwc = raw(x)
    assert nhwc.shape == x.shape and nhwc.is_contiguous()
    assert torch.equal(nhwc.view(2, 4, 5, 3), x.permute(0, 2, 3, 1))  # NHWC bytes
    assert torch.equal(logical(nhwc), x) and logical(nhwc).is_contiguous(memory_format=torch.channels_last)


def test_conv_chain_stays_nhwc_and_matches_ort(fake_timer, tmp_path):
    fake_timer.table = {"conv2d_nhwc": 0.5}
    m = twin_convs()
    eng = _build(m)
    convs = [lay for lay in eng.plan.layers if "Conv" in lay.type]
    assert [lay.tactic["params"].get("out_nhwc") for lay in convs] == [[0]] * 3
    assert [lay.tactic["params"].get("in_nhwc") for lay in convs] == [None, [0], [0]]  # graph input: NCHW
    gap = next(lay for lay in eng.plan.layers if lay.type == "GlobalAveragePool")
    assert gap.tactic["params"] == {"in_nhwc": [0]}
    feed = {"x": rand((3, 4, 12, 12), seed=5)}
    ref = run_ort(m, feed)
    assert_close({k: v.numpy() for k, v in eng.create_execution_context().infer(feed).items()}, ref, 1e-4, 1e-4)
    eng.save(tmp_path / "e.engine")
    eng2 = tf.Engine.load(tmp_path / "e.engine")
    assert_close({k: v.numpy() for k, v in eng2.create_execution_context().infer(feed).items()}, ref, 1e-4, 1e-4)


def test_views_outputs_and_reference_tactics_see_nchw(fake_timer):
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array((rng.standard_normal((6, 3, 3, 3)) * 0.3).astype(np.float32), "w"),
             numpy_helper.from_array(np.array([0, -1], np.int64), "shape")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("MaxPool", ["c"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
             helper.make_node("Relu", ["p"], ["r"], name="relu"),
             helper.make_node("Reshape", ["r", "shape"], ["f"], name="flatten"),
             helper.make_node("Neg", ["f"], ["flat"], name="neg"),
             helper.make_node("Sigmoid", ["c"], ["y2"], name="sig")]
    m = make_model(nodes, [("x", TensorProto.FLOAT, [2, 3, 8, 8])],
                   [("flat", TensorProto.FLOAT, None), ("y2", TensorProto.FLOAT, None)], inits)
    fake_timer.table = {"conv2d_nhwc": 0.5}
    eng = _build(m)
    p = _params(eng)
    assert p["conv"].get("out_nhwc") == [0]
    assert p["pool"] == {"in_nhwc": [0], "out_nhwc": [0]}  # pooling propagates the layout
    assert next(lay for lay in eng.plan.layers if lay.name == "flatten").mode == "view"
    assert p["relu"] == {"in_nhwc": [0]}  # its output feeds a reshape view: NCHW
    assert p["sig"] == {"in_nhwc": [0]}  # produces a graph output: NCHW
    feed = {"x": rand((2, 3, 8, 8), seed=2)}
    got = {k: v.numpy() for k, v in eng.create_execution_context().infer(feed).items()}
    assert_close(got, run_ort(m, feed), 1e-5, 1e-5)
    fake_timer.table = {"conv2d_nhwc": 2.0}
    assert all("in_nhwc" not in q and "out_nhwc" not in q for q in _params(_build(m)).values())


def test_mixed_nchw_and_nhwc_tactics_match_ort(fake_timer):
    m = twin_convs(hw=6)
    feed = {"x": rand((2, 4, 6, 6), seed=3)}
    ref = run_ort(m, feed)
    for first_nhwc in (True, False):
        def t(lay, tactic, first_nhwc=first_nhwc):
            nhwc = tactic["name"] == "conv2d_nhwc"
            return 0.5 if nhwc == (first_nhwc == lay.name.startswith("conv1")) else 1.0
        fake_timer.table = {"conv2d_nhwc": t, "reference": t}
        eng = _build(m)
        names = [lay.tactic["name"] for lay in eng.plan.layers if "Conv" in lay.type]
        assert names == (["conv2d_nhwc", "reference", "reference"] if first_nhwc else
                         ["reference", "conv2d_nhwc", "conv2d_nhwc"])
        got = {k: v.numpy() for k, v in eng.create_execution_context().infer(feed).items()}
        assert_close(got, ref, 1e-4, 1e-4)
