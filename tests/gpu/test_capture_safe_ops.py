"""Resize / Pad / host-only ops (Range, ConstantOfShape) inside a CUDA graph: their scales, sizes,
pads and bounds are host inputs, and their references build index/coordinate tables on the device,
so capturing the enqueue works (no host<->device copy during capture) and replays match ORT."""
import os

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import tensorforge as tf
from tensorforge.testing import make_model, rand, run_ort

DEVICE = os.environ.get("TF_CAPTURE_TEST_DEVICE", "cuda")  # "cpu": check the models without a GPU
F, I64 = TensorProto.FLOAT, TensorProto.INT64


def _init(name, vals, dtype):
    return numpy_helper.from_array(np.array(vals, dtype=dtype), name)


def _resize(mode, scales=None, sizes=None, **attrs):
    inits = [_init("scales", scales, np.float32)] if scales else [_init("sizes", sizes, np.int64)]
    ins = ["x", "", "scales"] if scales else ["x", "", "", "sizes"]
    node = helper.make_node("Resize", ins, ["y"], mode=mode, **attrs)
    return make_model([node], [("x", F, [2, 3, 5, 6])], [("y", F, None)], inits, opset=19)


def _resize_dynamic_sizes():
    """sizes = Concat(Shape(x)[:2], [7, 9]) with a dynamic batch: a shape tensor fed at run time."""
    nodes = [helper.make_node("Shape", ["x"], ["s"], start=0, end=2),
             helper.make_node("Concat", ["s", "hw"], ["sizes"], axis=0),
             helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="linear")]
    return make_model(nodes, [("x", F, ["N", 3, 5, 6])], [("y", F, None)],
                      [_init("hw", [7, 9], np.int64)], opset=19)


def _pad(mode, pads, value=None):
    inits = [_init("pads", pads, np.int64)] + ([_init("cv", value, np.float32)] if value is not None else [])
    ins = ["x", "pads"] + (["cv"] if value is not None else [])
    return make_model([helper.make_node("Pad", ins, ["y"], mode=mode)], [("x", F, [2, 3, 5, 6])],
                      [("y", F, None)], inits, opset=18)


def _host_only_ops():
    """Range(0, W, 1) and ConstantOfShape(Shape(x)) over a dynamic width: computed at run time."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "one"], ["w"], axis=0),
             helper.make_node("Range", ["zero", "w", "step"], ["r"]),
             helper.make_node("Cast", ["r"], ["rf"], to=F),
             helper.make_node("ConstantOfShape", ["s"], ["c"], value=helper.make_tensor("v", F, [1], [0.5])),
             helper.make_node("Add", ["x", "rf"], ["t"]),
             helper.make_node("Mul", ["t", "c"], ["y"])]
    inits = [_init("one", 1, np.int64), _init("zero", 0, np.int64), _init("step", 1, np.int64)]
    return make_model(nodes, [("x", F, [3, "W"])], [("y", F, None)], inits, opset=17)


def _shared_host_constant():
    """A constant read both as Range's start (host input) and by a device Add: the runtime keeps a
    host copy of the device weight for Range (no .item() sync inside the captured graph)."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "one"], ["w"], axis=0),
             helper.make_node("Add", ["w", "k"], ["end"]),
             helper.make_node("Range", ["k", "end", "step"], ["r"]),
             helper.make_node("Cast", ["r"], ["rf"], to=F),
             helper.make_node("Gather", ["x", "k"], ["col"], axis=1),
             helper.make_node("Unsqueeze", ["col", "one1"], ["col2"]),
             helper.make_node("Add", ["x", "rf"], ["t"]),
             helper.make_node("Add", ["t", "col2"], ["y"])]
    inits = [_init("one", 1, np.int64), _init("k", 2, np.int64), _init("step", 1, np.int64),
             _init("one1", [1], np.int64)]
    return make_model(nodes, [("x", F, [3, "W"])], [("y", F, None)], inits, opset=17)


CASES = {
    "resize_nearest_scales": (_resize("nearest", scales=[1, 1, 2.0, 1.5]), [2, 3, 5, 6]),
    "resize_nearest_sizes": (_resize("nearest", sizes=[2, 3, 9, 4], nearest_mode="floor"), [2, 3, 5, 6]),
    "resize_linear_scales": (_resize("linear", scales=[1, 1, 1.6, 0.5]), [2, 3, 5, 6]),
    "resize_linear_sizes": (_resize("linear", sizes=[2, 3, 8, 11],
                                    coordinate_transformation_mode="align_corners"), [2, 3, 5, 6]),
    "resize_linear_dynamic_sizes": (_resize_dynamic_sizes(), [4, 3, 5, 6]),
    "pad_constant": (_pad("constant", [0, 0, 1, 2, 0, 1, 2, 1], value=[0.25]), [2, 3, 5, 6]),
    "pad_reflect": (_pad("reflect", [0, 0, 2, 1, 0, 0, 1, 3]), [2, 3, 5, 6]),
    "range_constant_of_shape": (_host_only_ops(), [3, 7]),
    "range_start_shared_with_device_op": (_shared_host_constant(), [3, 7]),
}


@pytest.mark.fast(name="resize_linear_dynamic_sizes")
@pytest.mark.fast(name="pad_reflect")
@pytest.mark.fast(name="range_start_shared_with_device_op")
@pytest.mark.parametrize("name", sorted(CASES))
def test_captured_in_cuda_graph_matches_ort(name):
    model, shape = CASES[name]
    eng = tf.Builder(tf.BuilderConfig(device=DEVICE, tf32=False)).build(model)
    ctx = eng.create_execution_context(use_cuda_graph=True)
    for seed in (1, 2, 3):  # eager run + capture, then replays on new data
        feed = {"x": rand(shape, seed=seed)}
        got = ctx.infer(feed)["y"].cpu().numpy()
        np.testing.assert_allclose(got, run_ort(model, feed)["y"], rtol=1e-5, atol=1e-5, err_msg=f"seed {seed}")
    if DEVICE == "cuda":
        assert len(ctx._graphs) == 1, "the enqueue was not captured"
        torch.cuda.synchronize()
