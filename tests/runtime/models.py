"""Small ONNX models for the runtime tests: branchy graphs, detector-like heads, shape tensors."""
import numpy as np
from onnx import TensorProto as T, helper as h, numpy_helper

from tensorforge.testing import make_model


def _w(rng, name, *shape):
    a = numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32))
    a.name = name
    return a


def two_branch(seed=0, batch="N"):
    """x -> [conv, relu, conv] and [conv, sigmoid, conv] -> Concat: two independent conv branches."""
    rng = np.random.default_rng(seed)
    inits = [_w(rng, "wa1", 8, 3, 3, 3), _w(rng, "wa2", 8, 8, 3, 3), _w(rng, "wb1", 8, 3, 3, 3),
             _w(rng, "wb2", 8, 8, 3, 3)]
    nodes = [h.make_node("Conv", ["x", "wa1"], ["a1"], pads=[1] * 4, name="a_conv1"),
             h.make_node("Relu", ["a1"], ["a2"], name="a_relu"),
             h.make_node("Conv", ["a2", "wa2"], ["a3"], pads=[1] * 4, name="a_conv2"),
             h.make_node("Conv", ["x", "wb1"], ["b1"], pads=[1] * 4, name="b_conv1"),
             h.make_node("Sigmoid", ["b1"], ["b2"], name="b_sigmoid"),
             h.make_node("Conv", ["b2", "wb2"], ["b3"], pads=[1] * 4, name="b_conv2"),
             h.make_node("Concat", ["a3", "b3"], ["y"], axis=1, name="join")]
    return make_model(nodes, [("x", T.FLOAT, [batch, 3, 8, 8])], [("y", T.FLOAT, [batch, 16, 8, 8])], inits)


def heads(seed=0, scales=3):
    """A stem conv, then per scale a box branch and a class branch (two convs each), like detector
    heads; every branch output is a graph output."""
    rng = np.random.default_rng(seed)
    inits = [_w(rng, "stem_w", 8, 3, 3, 3)]
    nodes = [h.make_node("Conv", ["x", "stem_w"], ["f0"], pads=[1] * 4, name="stem"),
             h.make_node("Relu", ["f0"], ["f"], name="stem_relu")]
    outs = []
    for s in range(scales):
        for br in ("box", "cls"):
            p = f"h{s}_{br}"
            inits += [_w(rng, f"{p}_w1", 8, 8, 3, 3), _w(rng, f"{p}_w2", 4, 8, 1, 1)]
            nodes += [h.make_node("Conv", ["f", f"{p}_w1"], [f"{p}_c1"], pads=[1] * 4, name=f"{p}.conv1"),
                      h.make_node("Sigmoid", [f"{p}_c1"], [f"{p}_s"], name=f"{p}.act"),
                      h.make_node("Conv", [f"{p}_s", f"{p}_w2"], [p], name=f"{p}.conv2")]
            outs.append((p, T.FLOAT, ["N", 4, 8, 8]))
    return make_model(nodes, [("x", T.FLOAT, ["N", 3, 8, 8])], outs, inits)


def shape_tensor_model():
    """y = Relu(x) reshaped to the values of shape input `s`; z = Expand(b, e) for shape input `e`."""
    nodes = [h.make_node("Relu", ["x"], ["r"], name="relu"),
             h.make_node("Reshape", ["r", "s"], ["y"], name="reshape"),
             h.make_node("Expand", ["b", "e"], ["z"], name="expand")]
    inputs = [("x", T.FLOAT, ["N", 12]), ("s", T.INT64, [2]), ("b", T.FLOAT, [1, 3]), ("e", T.INT64, [2])]
    return make_model(nodes, inputs, [("y", T.FLOAT, None), ("z", T.FLOAT, None)])


def with_dynamic_dims(model, inputs: dict, outputs: dict):
    """A copy of `model` whose input/output dims are replaced: {name: {axis: "S"}}."""
    import onnx
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for vis, spec in ((m.graph.input, inputs), (m.graph.output, outputs)):
        for vi in vis:
            for axis, param in spec.get(vi.name, {}).items():
                d = vi.type.tensor_type.shape.dim[axis]
                d.Clear()
                d.dim_param = param
    return m
