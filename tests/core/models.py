"""Tiny hand-built ONNX models shared by the core tests."""
import numpy as np
from onnx import TensorProto, helper, numpy_helper

from tensorforge.testing import make_model


def conv_net(seed=0, batch="N"):
    """Conv -> Relu -> Conv -> Add(residual) -> GlobalAveragePool -> Flatten -> Gemm."""
    rng = np.random.default_rng(seed)
    w = lambda *s: numpy_helper.from_array((rng.standard_normal(s) * 0.3).astype(np.float32))  # noqa: E731
    inits = []
    for name, arr in (("w1", w(8, 3, 3, 3)), ("b1", w(8)), ("w2", w(8, 8, 3, 3)), ("b2", w(8)),
                      ("fc_w", w(10, 8)), ("fc_b", w(10))):
        arr.name = name
        inits.append(arr)
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
             helper.make_node("Add", ["c2", "r1"], ["a"], name="add1"),
             helper.make_node("Relu", ["a"], ["r2"], name="relu2"),
             helper.make_node("GlobalAveragePool", ["r2"], ["p"], name="gap"),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["y"], transB=1, name="fc")]
    return make_model(nodes, [("x", TensorProto.FLOAT, [batch, 3, 16, 16])], [("y", TensorProto.FLOAT, [batch, 10])], inits)
