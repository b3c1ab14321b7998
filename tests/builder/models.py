"""Tiny ONNX models for the build tests (tactics, timing cache, precision)."""
import numpy as np
from onnx import TensorProto, helper, numpy_helper

from tensorforge.testing import make_model


def _w(rng, name, *shape, scale=0.3):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def twin_convs(seed=0, batch="N", hw=12):
    """conv1 -> relu1 -> conv2 -> conv3 (conv2 and conv3 identical: one signature) -> Gemm head."""
    rng = np.random.default_rng(seed)
    inits = [_w(rng, "w1", 8, 4, 3, 3), _w(rng, "b1", 8), _w(rng, "w2", 8, 8, 3, 3), _w(rng, "w3", 8, 8, 3, 3),
             _w(rng, "fc_w", 5, 8), _w(rng, "fc_b", 5)]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
             helper.make_node("Conv", ["c2", "w3"], ["c3"], pads=[1, 1, 1, 1], name="conv3"),
             helper.make_node("GlobalAveragePool", ["c3"], ["p"], name="gap"),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["y"], transB=1, name="fc")]
    return make_model(nodes, [("x", TensorProto.FLOAT, [batch, 4, hw, hw])], [("y", TensorProto.FLOAT, None)],
                      inits)


def mlp_softmax(seed=0):
    """x -> MatMul(fc1) -> Add bias -> Relu -> MatMul(fc2) -> Exp -> Softmax -> MatMul(fc3) -> y (one W)."""
    rng = np.random.default_rng(seed)
    inits = [_w(rng, "W", 16, 16), _w(rng, "bias", 16)]
    nodes = [helper.make_node("MatMul", ["x", "W"], ["m1"], name="fc1"),
             helper.make_node("Add", ["m1", "bias"], ["a1"], name="add1"),
             helper.make_node("Relu", ["a1"], ["r1"], name="relu1"),
             helper.make_node("MatMul", ["r1", "W"], ["m2"], name="fc2"),
             helper.make_node("Exp", ["m2"], ["e"], name="exp1"),
             helper.make_node("Softmax", ["e"], ["s"], axis=-1, name="softmax1"),
             helper.make_node("MatMul", ["s", "W"], ["y"], name="fc3")]
    return make_model(nodes, [("x", TensorProto.FLOAT, ["N", 16])], [("y", TensorProto.FLOAT, None)], inits)


def masked_scores(seed=0):
    """BERT-style additive mask: Cast(int mask) -> Sub(1, m) -> Mul(-3.4e38) -> Add(scores) -> Softmax -> MatMul."""
    rng = np.random.default_rng(seed)
    inits = [_w(rng, "Wq", 8, 8), _w(rng, "Wv", 8, 8), numpy_helper.from_array(np.array(1.0, np.float32), "one"),
             numpy_helper.from_array(np.array(-3.4e38, np.float32), "big"),
             numpy_helper.from_array(np.array([1e-12], np.float32), "eps")]
    nodes = [helper.make_node("Cast", ["mask"], ["mf"], to=TensorProto.FLOAT, name="cast_mask"),
             helper.make_node("Sub", ["one", "mf"], ["inv"], name="sub_mask"),
             helper.make_node("Mul", ["inv", "big"], ["bias"], name="mul_mask"),
             helper.make_node("MatMul", ["x", "Wq"], ["s"], name="scores"),
             helper.make_node("Add", ["s", "eps"], ["s2"], name="add_eps"),
             helper.make_node("Add", ["s2", "bias"], ["sb"], name="add_mask"),
             helper.make_node("Softmax", ["sb"], ["p"], axis=-1, name="softmax"),
             helper.make_node("MatMul", ["p", "Wv"], ["y"], name="context")]
    return make_model(nodes, [("x", TensorProto.FLOAT, [2, 8]), ("mask", TensorProto.INT64, [2, 8])],
                      [("y", TensorProto.FLOAT, None)], inits)


def postprocessed(seed=0):
    """x -> MatMul -> Mul(2) -> Add(0.5) -> y: the tail after the last GEMM is output post-processing."""
    rng = np.random.default_rng(seed)
    inits = [_w(rng, "W", 8, 8), numpy_helper.from_array(np.array(2.0, np.float32), "two"),
             numpy_helper.from_array(np.array(0.5, np.float32), "half")]
    nodes = [helper.make_node("MatMul", ["x", "W"], ["m"], name="fc"),
             helper.make_node("Mul", ["m", "two"], ["s"], name="scale"),
             helper.make_node("Add", ["s", "half"], ["y"], name="shift")]
    return make_model(nodes, [("x", TensorProto.FLOAT, [2, 8])], [("y", TensorProto.FLOAT, None)], inits)
