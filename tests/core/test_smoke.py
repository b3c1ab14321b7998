import numpy as np
from onnx import TensorProto, helper, numpy_helper

from tensorforge.testing import check_against_ort, make_model, rand


def test_conv_relu_dynamic_reshape_matches_ort():
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "W"),
             numpy_helper.from_array(rng.standard_normal((8,)).astype(np.float32), "B"),
             numpy_helper.from_array(np.array(0, dtype=np.int64), "zero"),
             numpy_helper.from_array(np.array([0], dtype=np.int64), "ax0"),
             numpy_helper.from_array(np.array([-1], dtype=np.int64), "m1")]
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c"], ["r"], name="relu1"),
             helper.make_node("Shape", ["r"], ["s"], name="shape"),
             helper.make_node("Gather", ["s", "zero"], ["n"], axis=0, name="g"),
             helper.make_node("Unsqueeze", ["n", "ax0"], ["nu"], name="u"),
             helper.make_node("Concat", ["nu", "m1"], ["tgt"], axis=0, name="cat"),
             helper.make_node("Reshape", ["r", "tgt"], ["y"], name="reshape")]
    m = make_model(nodes, [("x", TensorProto.FLOAT, ["N", 3, 8, 8])], [("y", TensorProto.FLOAT, None)], inits)
    for bs in (1, 3):
        check_against_ort(m, {"x": rand((bs, 3, 8, 8), seed=bs)})
