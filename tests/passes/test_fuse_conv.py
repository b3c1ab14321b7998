import numpy as np
import pytest

from tensorforge.passes import fuse_conv, fuse_epilogue, fuse_pointwise

from .util import check, init, model, node, ops, randn

CONV = [fuse_conv, fuse_epilogue]


def _conv_inits(cout=4, cin=3, k=3, seed=0):
    rng = np.random.default_rng(seed)
    return [init("w", rng.standard_normal((cout, cin, k, k)).astype(np.float32) * 0.3),
            init("b", rng.standard_normal(cout).astype(np.float32) * 0.1)]


def _bn_inits(c=4, seed=1, p="bn"):
    rng = np.random.default_rng(seed)
    return [init(f"{p}_s", rng.uniform(0.5, 1.5, c).astype(np.float32)),
            init(f"{p}_b", rng.standard_normal(c).astype(np.float32) * 0.1),
            init(f"{p}_m", rng.standard_normal(c).astype(np.float32) * 0.1),
            init(f"{p}_v", rng.uniform(0.5, 1.5, c).astype(np.float32))]


BN_IN = ["bn_s", "bn_b", "bn_m", "bn_v"]
X = [("x", [2, 3, 7, 9])]
FEED = {"x": randn((2, 3, 7, 9), seed=3)}


def test_conv_bn_relu_fires_and_names():
    m = model([("Conv", ["x", "w", "b"], ["c"], {"pads": [1, 1, 1, 1]}, "conv1"),
               ("BatchNormalization", ["c"] + BN_IN, ["n"], {"epsilon": 1e-3}, "bn1"),
               ("Relu", ["n"], ["y"], {}, "relu1")], X, ["y"], _conv_inits() + _bn_inits())
    g = check(m, FEED, CONV)
    n = node(g, "fused.ConvAct")
    assert n.name == "conv1 + bn1 + relu1" and n.origin == ["conv1", "bn1", "relu1"]
    assert ops(g) == ["fused.ConvAct"]


def test_conv_bn_declines_when_conv_output_has_second_user():
    m = model([("Conv", ["x", "w"], ["c"], {}, "conv1"),
               ("BatchNormalization", ["c"] + BN_IN, ["n"], {}, "bn1"),
               ("Add", ["n", "c"], ["y"], {}, "add")], X, ["y"], _conv_inits() + _bn_inits())
    g = check(m, FEED, [fuse_conv])
    assert "BatchNormalization" in ops(g) and "Conv" in ops(g)


def test_bn_declines_when_its_output_has_second_user():
    m = model([("Conv", ["x", "w"], ["c"], {}, "conv1"),
               ("BatchNormalization", ["c"] + BN_IN, ["n"], {}, "bn1"),
               ("Relu", ["n"], ["r"], {}, "relu1"),
               ("Add", ["n", "r"], ["y"], {}, "add")], X, ["y"], _conv_inits() + _bn_inits())
    g = check(m, FEED, CONV)
    conv = [n for n in g.nodes if n.op in ("Conv", "fused.ConvAct")][0]
    assert conv.name == "conv1 + bn1"  # BN folded, but the relu cannot join (n has two users)
    assert "Relu" in ops(g)


def test_conv_transpose_bn_grouped():
    rng = np.random.default_rng(0)
    inits = [init("w", rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.3)] + _bn_inits(6)
    m = model([("ConvTranspose", ["x", "w"], ["c"], {"group": 2, "strides": [2, 2]}, "up"),
               ("BatchNormalization", ["c"] + BN_IN, ["y"], {}, "bn")],
              [("x", [1, 4, 5, 5])], ["y"], inits)
    g = check(m, {"x": randn((1, 4, 5, 5))}, CONV)
    assert ops(g) == ["ConvTranspose"] and g.nodes[0].name == "up + bn"


@pytest.mark.parametrize("act", [
    [("Relu", [], {})], [("Clip", ["lo", "hi"], {})], [("LeakyRelu", [], {"alpha": 0.2})],
    [("Sigmoid", [], {})], [("HardSwish", [], {})], [("Gelu", [], {})], [("Elu", [], {})],
    [("Tanh", [], {}), ("Abs", [], {}), ("Sqrt", [], {})]])
def test_conv_bias_activation_chain(act):
    nodes = [("Conv", ["x", "w"], ["c"], {}, "conv"), ("Add", ["c", "bias"], ["h0"], {}, "bias_add")]
    for i, (op, extra, attrs) in enumerate(act):
        nodes.append((op, [f"h{i}"] + extra, [f"h{i + 1}"], attrs, f"act{i}"))
    nodes.append(("Identity", [f"h{len(act)}"], ["y"], {}, "id"))
    inits = _conv_inits() + [init("bias", np.linspace(-0.5, 0.5, 4, dtype=np.float32).reshape(4, 1, 1)),
                             init("lo", np.float32(0.0)), init("hi", np.float32(0.3))]
    m = model(nodes, X, ["y"], inits, opset=20)
    g = check(m, FEED, CONV)
    n = g.nodes[0]
    assert n.op == "fused.ConvAct" and n.name.startswith("conv + bias_add + act0")
    assert len(n.inputs) == 3 and n.inputs[2] is not None  # bias folded into the conv


def test_silu_epilogue():
    m = model([("Conv", ["x", "w", "b"], ["c"], {}, "conv"), ("Sigmoid", ["c"], ["s"], {}, "sig"),
               ("Mul", ["c", "s"], ["y"], {}, "mul")], X, ["y"], _conv_inits())
    g = check(m, FEED, CONV + [fuse_pointwise, fuse_epilogue])
    assert ops(g) == ["fused.ConvAct"] and g.nodes[0].name == "conv + sig + mul"


def test_conv_residual_add_relu():
    inits = _conv_inits(3, 3, 3) + [init("w2", np.full((3, 3, 1, 1), 0.2, np.float32))]
    m = model([("Conv", ["x", "w2"], ["a"], {}, "conv_a"),
               ("Conv", ["a", "w", "b"], ["c"], {"pads": [1, 1, 1, 1]}, "conv_b"),
               ("Add", ["c", "a"], ["s"], {}, "add"), ("Relu", ["s"], ["y"], {}, "relu")], X, ["y"], inits)
    g = check(m, FEED, CONV)
    assert [n.name for n in g.nodes] == ["conv_a", "conv_b + add + relu"]
    assert g.nodes[1].inputs[3] is g.nodes[0].outputs[0]


def test_residual_declines_when_broadcast_would_grow_the_conv_output():
    m = model([("Conv", ["x", "w", "b"], ["c"], {}, "conv"), ("Add", ["c", "r"], ["y"], {}, "add")],
              [("x", [1, 3, 7, 9]), ("r", [2, 4, 5, 7])], ["y"], _conv_inits())
    g = check(m, {"x": randn((1, 3, 7, 9)), "r": randn((2, 4, 5, 7), seed=4)}, CONV)
    assert ops(g) == ["Conv", "Add"]


def test_pad_conv():
    m = model([("Pad", ["x", "pads"], ["p"], {}, "pad"), ("Conv", ["p", "w", "b"], ["y"], {"pads": [0, 1, 0, 1]}, "conv")],
              X, ["y"], _conv_inits() + [init("pads", np.array([0, 0, 1, 2, 0, 0, 3, 0], np.int64))])
    g = check(m, FEED, CONV)
    assert ops(g) == ["Conv"] and g.nodes[0].attrs["pads"] == [1, 3, 3, 1] and g.nodes[0].name == "pad + conv"


def test_pad_conv_declines_reflect_and_channel_pads():
    inits = _conv_inits() + [init("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)),
                             init("cp", np.array([0, 1, 0, 0, 0, 0, 0, 0], np.int64)),
                             init("w4", np.ones((4, 5, 1, 1), np.float32))]
    m = model([("Pad", ["x", "pads"], ["p"], {"mode": "reflect"}, "pad"), ("Conv", ["p", "w"], ["y"], {}, "conv"),
               ("Pad", ["y", "cp"], ["q"], {}, "pad2"), ("Conv", ["q", "w4"], ["z"], {}, "conv2")],
              X, ["z"], inits)
    g = check(m, FEED, CONV)
    assert ops(g).count("Pad") == 2


def test_conv_transpose_bias_leaky_relu_epilogue():
    rng = np.random.default_rng(1)
    inits = [init("w", rng.standard_normal((3, 2, 2, 2)).astype(np.float32)), init("b", np.float32([0.1, -0.2]))]
    m = model([("ConvTranspose", ["x", "w", "b"], ["c"], {"strides": [2, 2]}, "up"),
               ("LeakyRelu", ["c"], ["y"], {"alpha": 0.1}, "act")], X, ["y"], inits)
    g = check(m, FEED, CONV)
    n = node(g, "fused.ConvAct")
    assert n.attrs["transpose"] == 1 and n.name == "up + act"


def test_residual_of_two_convs_keeps_one_bias_in_the_in_branch_conv():
    """ResNet downsample block: relu(conv3(relu(conv_a(x))) + ds(x)); ds loses its bias, conv3 (in-branch) fuses
    the sum of both biases, the Add and the Relu."""
    rng = np.random.default_rng(5)
    inits = _conv_inits(3, 3, 1) + [init("wa", rng.standard_normal((3, 3, 1, 1)).astype(np.float32)),
                                    init("wd", rng.standard_normal((3, 3, 1, 1)).astype(np.float32)),
                                    init("bd", rng.standard_normal(3).astype(np.float32))]
    m = model([("Conv", ["x", "wa"], ["a0"], {}, "conv_a"), ("Relu", ["a0"], ["a"], {}, "relu_a"),
               ("Conv", ["a", "w", "b"], ["c"], {}, "conv3"), ("Conv", ["x", "wd", "bd"], ["d"], {}, "ds"),
               ("Add", ["c", "d"], ["s"], {}, "add"), ("Relu", ["s"], ["y"], {}, "relu")], X, ["y"], inits)
    g = check(m, FEED, CONV)
    ds, fused = [n for n in g.nodes if n.name == "ds"][0], g.nodes[-1]
    assert len(ds.inputs) == 2 and fused.name == "conv3 + add + relu" and fused.inputs[3] is ds.outputs[0]
    assert fused.inputs[2].const is not None
