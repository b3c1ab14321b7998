"""A small DB-style FPN neck (PP-OCRv4's RSE-FPN shape): lateral 1x1 convs with a residual SE
(conv + conv * SE: the conv output is read twice, so the Adds stay pointwise layers), top-down
nearest 2x Resize + Add, 3x3 smoothing convs, 8x / 4x / 2x Resize into a Concat, a head conv."""
from __future__ import annotations

import numpy as np
from onnx import helper, numpy_helper

from tensorforge.testing import make_model, rand

F = 1  # TensorProto.FLOAT


def fpn_model(c=8, size=32, coord="asymmetric", nearest_mode="floor", opset=13):
    """(ModelProto, feed); 3 Resizes feed Adds (fusable), 2 feed the Concat (not)."""
    rng = np.random.default_rng(0)
    inits, nodes = [], []

    def w(name, shape):  # fan-in scaled: activations stay O(1), the Sigmoid does not saturate
        scale = 1.0 / np.sqrt(np.prod(shape[1:])) if len(shape) > 1 else 0.1
        inits.append(numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name))
        return name

    def conv(x, y, cin, cout, k=1, stride=1):
        nodes.append(helper.make_node("Conv", [x, w(f"{y}.w", [cout, cin, k, k]), w(f"{y}.b", [cout])], [y],
                                      name=y, kernel_shape=[k, k], pads=[k // 2] * 4, strides=[stride] * 2))
        return y

    def up(x, y, s):
        name = f"{y}.scales"
        inits.append(numpy_helper.from_array(np.array([1, 1, s, s], np.float32), name))
        nodes.append(helper.make_node("Resize", [x, "roi", name], [y], name=y, mode="nearest",
                                      coordinate_transformation_mode=coord, nearest_mode=nearest_mode))
        return y

    def rse(x, y):
        """conv(x) + conv(x) * hardsigmoid(conv(relu(conv(avgpool(conv(x))))))."""
        t = conv(x, f"{y}.conv", c, c)
        nodes.append(helper.make_node("GlobalAveragePool", [t], [f"{y}.gap"], name=f"{y}.gap"))
        nodes.append(helper.make_node("Relu", [conv(f"{y}.gap", f"{y}.se1", c, c // 2)], [f"{y}.r"], name=f"{y}.r"))
        nodes.append(helper.make_node("HardSigmoid", [conv(f"{y}.r", f"{y}.se2", c // 2, c)], [f"{y}.hs"],
                                      name=f"{y}.hs"))
        nodes.append(helper.make_node("Mul", [t, f"{y}.hs"], [f"{y}.se"], name=f"{y}.mul"))
        nodes.append(helper.make_node("Add", [t, f"{y}.se"], [y], name=f"{y}.add"))
        return y

    inits.append(numpy_helper.from_array(np.zeros(0, np.float32), "roi"))
    c2 = conv("x", "c2", 3, c, 3, 2)
    c3 = conv(c2, "c3", c, c, 3, 2)
    c4 = conv(c3, "c4", c, c, 3, 2)
    c5 = conv(c4, "c5", c, c, 3, 2)
    in5, in4, in3, in2 = (rse(t, f"in{i}") for i, t in zip((5, 4, 3, 2), (c5, c4, c3, c2)))
    prev = in5
    for i, lat in ((4, in4), (3, in3), (2, in2)):
        nodes.append(helper.make_node("Add", [lat, up(prev, f"up{i}", 2)], [f"out{i}"], name=f"add{i}"))
        prev = f"out{i}"
    p5 = up(conv(in5, "p5", c, c // 2, 3), "p5.up", 8)
    p4 = up(conv("out4", "p4", c, c // 2, 3), "p4.up", 4)
    p3 = up(conv("out3", "p3", c, c // 2, 3), "p3.up", 2)
    p2 = conv("out2", "p2", c, c // 2, 3)
    nodes.append(helper.make_node("Concat", [p5, p4, p3, p2], ["fuse"], name="concat", axis=1))
    nodes.append(helper.make_node("Sigmoid", [conv("fuse", "head", 2 * c, 1, 3)], ["y"], name="sigmoid"))
    m = make_model(nodes, [("x", F, [1, 3, size, size])], [("y", F, [1, 1, size // 2, size // 2])], inits,
                   opset=opset)
    return m, {"x": rand((1, 3, size, size), seed=5)}
