import math

import numpy as np

from tensorforge.passes import fuse_activations, fuse_reductions

from .util import check, init, model, node, ops, randn

X = [("x", [2, 3, 4, 5])]
FEED = {"x": randn((2, 3, 4, 5), seed=1, lo=-3, hi=3)}
C = {"half": 0.5, "one": 1.0, "three": 3.0, "k": 0.044715, "s2p": math.sqrt(2 / math.pi),
     "rs2": 1 / math.sqrt(2), "six": 6.0, "zero": 0.0, "two": 2.0, "sixth": 1 / 6}
CONSTS = [init(k, np.float32(v)) for k, v in C.items()]


def test_gelu_tanh_and_erf_variants():
    nodes = [  # gelu_new: 0.5x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))
        ("Mul", ["x", "half"], ["h"]), ("Pow", ["x", "three"], ["c"]), ("Mul", ["c", "k"], ["ck"]),
        ("Add", ["x", "ck"], ["in"]), ("Mul", ["in", "s2p"], ["u"]), ("Tanh", ["u"], ["t"]),
        ("Add", ["t", "one"], ["t1"]), ("Mul", ["h", "t1"], ["a"]),
        # erf form with x * (1/sqrt2) and the 0.5 on the left
        ("Mul", ["a", "rs2"], ["z"]), ("Erf", ["z"], ["e"]), ("Add", ["one", "e"], ["e1"]),
        ("Mul", ["half", "a"], ["ha"]), ("Mul", ["ha", "e1"], ["y"])]
    m = model(nodes, X, ["y"], CONSTS)
    g = check(m, FEED, [fuse_activations])
    assert ops(g) == ["Gelu", "Gelu"]
    assert [n.attrs["approximate"] for n in g.nodes] == ["tanh", "none"]


def test_gelu_declines_wrong_constant_or_shared_inner():
    nodes = [("Mul", ["x", "rs2"], ["z"]), ("Erf", ["z"], ["e"]), ("Add", ["e", "one"], ["e1"]),
             ("Mul", ["x", "e1"], ["a"]), ("Mul", ["a", "three"], ["y"]),  # 3 instead of 0.5
             ("Mul", ["x", "rs2"], ["z2"]), ("Erf", ["z2"], ["f"]), ("Add", ["f", "one"], ["f1"]),
             ("Mul", ["x", "f1"], ["b"]), ("Mul", ["b", "half"], ["w"]), ("Add", ["w", "f"], ["v"])]
    m = model(nodes, X, ["y", "v"], CONSTS)
    g = check(m, FEED, [fuse_activations])
    assert "Gelu" not in ops(g)


def test_hardswish_forms():
    nodes = [("HardSigmoid", ["x"], ["hs"], {"alpha": 1 / 6, "beta": 0.5}), ("Mul", ["x", "hs"], ["a"]),
             ("Add", ["a", "three"], ["b"]), ("Clip", ["b", "zero", "six"], ["c"]), ("Mul", ["a", "c"], ["d"]),
             ("Div", ["d", "six"], ["y"])]
    m = model(nodes, X, ["y"], CONSTS)
    g = check(m, FEED, [fuse_activations])
    assert ops(g) == ["HardSwish", "HardSwish"]


def test_softmax_log_and_canonical_softmax():
    nodes = [("Softmax", ["x"], ["s"], {"axis": 1}, "sm"), ("Log", ["s"], ["y"], {}, "log"),
             ("Softmax", ["x"], ["z"], {"axis": -1}, "sm2")]
    m = model(nodes, X, ["y", "z"])
    g = check(m, FEED, [fuse_reductions])
    assert ops(g) == ["fused.LogSoftmax", "fused.Softmax"] and g.nodes[0].name == "sm + log"
    assert g.nodes[0].attrs["axes"] == [-3]


def test_softmax_opset11_flattens_trailing_axes():
    m = model([("Softmax", ["x"], ["y"], {"axis": 1})], X, ["y"], opset=11)
    g = check(m, FEED, [fuse_reductions])
    assert node(g, "fused.Softmax").attrs["axes"] == [-3, -2, -1]


def test_mean_over_hw_becomes_pooling():
    nodes = [("ReduceMean", ["x"], ["a"], {"axes": [2, 3]}), ("ReduceMax", ["x"], ["b"], {"axes": [-1, -2], "keepdims": 0}),
             ("ReduceMean", ["x"], ["c"], {"axes": [1, 2]})]
    m = model(nodes, X, ["a", "b", "c"])
    g = check(m, FEED, [fuse_reductions])
    assert ops(g) == ["GlobalAveragePool", "GlobalMaxPool", "Reshape", "fused.Reduce"]


def test_shuffle_reduce():
    nodes = [("Transpose", ["x"], ["t"], {"perm": [0, 2, 3, 1]}), ("ReduceSum", ["t", "ax"], ["y"], {"keepdims": 0}),
             ("Transpose", ["x"], ["u"], {"perm": [2, 3, 0, 1]}), ("ReduceMax", ["u"], ["z"], {"axes": [0, 1]}),
             ("Transpose", ["x"], ["v"], {"perm": [1, 0, 2, 3]}), ("ReduceMean", ["v"], ["w"], {"axes": [0, 1], "keepdims": 0}),
             ("Transpose", ["x"], ["q"], {"perm": [3, 1, 2, 0]}), ("ReduceMin", ["q"], ["p"], {"axes": [1]})]
    m = model(nodes, X, ["y", "z", "w", "p"], [init("ax", np.array([1, 2], np.int64))], opset=17)
    g = check(m, FEED, [fuse_reductions])
    assert ops(g) == ["fused.Reduce", "fused.Reduce", "Reshape", "fused.Reduce", "Transpose", "fused.Reduce"]
    assert g.nodes[0].name == "transpose0 + reducesum1" and g.nodes[0].attrs["axes"] == [-2, -1]


def test_norm_reductions_from_decomposed_forms():
    nodes = [("Abs", ["x"], ["a"]), ("ReduceSum", ["a", "ax"], ["l1"]),
             ("Mul", ["x", "x"], ["sq"]), ("ReduceSum", ["sq", "ax"], ["ss"]), ("Sqrt", ["ss"], ["l2"]),
             ("Pow", ["x", "two"], ["p2"]), ("ReduceSum", ["p2", "ax"], ["sumsq"], {"keepdims": 0}),
             ("Exp", ["x"], ["e"]), ("ReduceSum", ["e", "ax"], ["se"]), ("Log", ["se"], ["lse"]),
             ("Sub", ["x", "one"], ["d"]), ("Relu", ["d"], ["rd"]), ("ReduceMax", ["rd"], ["pro"], {"axes": [-1]})]
    m = model(nodes, X, ["l1", "l2", "sumsq", "lse", "pro"], CONSTS + [init("ax", np.array([-1], np.int64))])
    g = check(m, FEED, [fuse_reductions], rtol=1e-5, atol=1e-5)
    assert ops(g) == ["fused.Reduce"] * 5
    assert [n.attrs["kind"] for n in g.nodes] == ["l1", "l2", "sumsquare", "logsumexp", "max"]
    assert g.nodes[4].attrs["prologue"] and len(g.nodes[4].inputs) == 1


def test_reduce_prologue_declines_shared_pointwise():
    nodes = [("Exp", ["x"], ["e"]), ("ReduceSum", ["e", "ax"], ["s"]), ("Add", ["s", "e"], ["y"])]
    m = model(nodes, X, ["y"], [init("ax", np.array([-1], np.int64))])
    g = check(m, FEED, [fuse_reductions])
    assert ops(g) == ["Exp", "fused.Reduce", "Add"] and not g.nodes[1].attrs.get("prologue")
