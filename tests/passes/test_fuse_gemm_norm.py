import math

import numpy as np

from tensorforge.passes import fuse_activations, fuse_epilogue, fuse_gemm, fuse_norms, fuse_pointwise, fuse_scale

from .util import check, init, model, node, ops, randn

GEMM = [fuse_activations, fuse_gemm, fuse_epilogue]
RNG = np.random.default_rng(0)
W = init("w", (RNG.standard_normal((8, 6)) * 0.3).astype(np.float32))
BIAS = init("bias", (RNG.standard_normal(6) * 0.1).astype(np.float32))
X = [("x", [2, 5, 8])]
FEED = {"x": randn((2, 5, 8), seed=1), "r": randn((2, 5, 6), seed=2)}


def _gelu_erf(x, y, p="g"):
    return [("Div", [x, "sqrt2"], [f"{p}d"], {}, f"{p}.div"), ("Erf", [f"{p}d"], [f"{p}e"], {}, f"{p}.erf"),
            ("Add", [f"{p}e", "one"], [f"{p}a"], {}, f"{p}.add"), ("Mul", [x, f"{p}a"], [f"{p}m"], {}, f"{p}.mul"),
            ("Mul", [f"{p}m", "half"], [y], {}, f"{p}.mul2")]


CONSTS = [init("sqrt2", np.float32(math.sqrt(2))), init("one", np.float32(1)), init("half", np.float32(0.5))]


def test_matmul_bias_gelu_residual():
    nodes = [("MatMul", ["x", "w"], ["mm"], {}, "fc.matmul"), ("Add", ["mm", "bias"], ["h"], {}, "fc.add")]
    nodes += _gelu_erf("h", "a") + [("Add", ["a", "r"], ["y"], {}, "res")]
    m = model(nodes, X + [("r", [2, 5, 6])], ["y"], [W, BIAS] + CONSTS)
    g = check(m, FEED, GEMM)
    n = node(g, "fused.MatMulAct")
    assert ops(g) == ["fused.MatMulAct"] and n.inputs[2].shape == (6,) and n.inputs[3].name == "r"
    assert n.name == "fc.matmul + fc.add + g.div + g.erf + g.add + g.mul + g.mul2 + res"


def test_matmul_scale_then_bias():
    nodes = [("MatMul", ["x", "w"], ["mm"]), ("Div", ["mm", "four"], ["s"]), ("Add", ["s", "bias"], ["y"])]
    m = model(nodes, X, ["y"], [W, BIAS, init("four", np.float32(4))])
    g = check(m, FEED, GEMM)
    n = node(g, "fused.MatMulAct")
    assert n.attrs["alpha"] == 0.25 and n.inputs[2] is not None and not n.attrs.get("epilogue")


def test_matmul_bias_declines_when_matmul_has_second_user():
    nodes = [("MatMul", ["x", "w"], ["mm"]), ("Add", ["mm", "bias"], ["a"]), ("Mul", ["mm", "a"], ["y"])]
    m = model(nodes, X, ["y"], [W, BIAS])
    g = check(m, FEED, [fuse_gemm])
    assert ops(g) == ["MatMul", "Add", "Mul"]


def test_gemm_bias_relu():
    nodes = [("Gemm", ["x2", "w"], ["gm"], {"transB": 0}, "fc"), ("Add", ["gm", "bias"], ["h"], {}, "add"),
             ("Relu", ["h"], ["y"], {}, "relu")]
    m = model(nodes, [("x2", [3, 8])], ["y"], [W, BIAS])
    g = check(m, {"x2": randn((3, 8))}, GEMM)
    n = node(g, "fused.GemmAct")
    assert n.name == "fc + add + relu" and n.inputs[2] is not None


def _ln(x, y, p="ln", eps=1e-5, recip=False, square="Pow"):
    sq = [("Pow", [f"{p}d", "two"], [f"{p}sq"])] if square == "Pow" else [("Mul", [f"{p}d", f"{p}d"], [f"{p}sq"])]
    norm = ([("Reciprocal", [f"{p}sd"], [f"{p}r"]), ("Mul", [f"{p}r", f"{p}d"], [f"{p}n"])] if recip
            else [("Div", [f"{p}d", f"{p}sd"], [f"{p}n"])])
    return ([("ReduceMean", [x], [f"{p}mu"], {"axes": [-1]}), ("Sub", [x, f"{p}mu"], [f"{p}d"])] + sq +
            [("ReduceMean", [f"{p}sq"], [f"{p}v"], {"axes": [-1]}), ("Add", [f"{p}v", "eps"], [f"{p}ve"]),
             ("Sqrt", [f"{p}ve"], [f"{p}sd"])] + norm +
            [("Mul", [f"{p}n", "gamma"], [f"{p}g"]), ("Add", [f"{p}g", "beta"], [y])])


LN_CONSTS = [init("two", np.float32(2)), init("eps", np.float32(1e-5)),
             init("gamma", RNG.uniform(0.5, 1.5, 8).astype(np.float32)),
             init("beta", (RNG.standard_normal(8) * 0.1).astype(np.float32))]


def test_layernorm_decomposed_forms():
    nodes = _ln("x", "a") + _ln("a", "b", "l2", recip=True, square="Mul") + [("Relu", ["b"], ["y"])]
    m = model(nodes, X, ["y"], LN_CONSTS, opset=17)
    g = check(m, FEED, [fuse_norms, fuse_epilogue], rtol=1e-5, atol=2e-5)
    assert ops(g) == ["fused.LayerNorm", "fused.LayerNorm"]
    assert g.nodes[1].attrs["epilogue"] and g.nodes[0].inputs[1].name == "gamma"
    assert g.nodes[0].attrs["axis"] == -1 and abs(g.nodes[0].attrs["epsilon"] - 1e-5) < 1e-12


def test_layernorm_declines_mean_over_other_axis_or_shared_center():
    nodes = _ln("x", "a")
    nodes[0] = ("ReduceMean", ["x"], ["lnmu"], {"axes": [1]})
    bad = nodes + _ln("x", "b", "l2") + [("Add", ["a", "b"], ["c"]), ("Add", ["c", "l2d"], ["y"])]
    m = model(bad, X, ["y"], LN_CONSTS)
    g = check(m, FEED, [fuse_norms], atol=2e-5)
    assert "fused.LayerNorm" not in ops(g)


def test_rmsnorm_and_layernormalization_op():
    nodes = [("Mul", ["x", "x"], ["sq"]), ("ReduceMean", ["sq"], ["ms"], {"axes": [-1]}),
             ("Add", ["ms", "eps"], ["mse"]), ("Sqrt", ["mse"], ["rms"]), ("Div", ["x", "rms"], ["n"]),
             ("Mul", ["n", "gamma"], ["a"]),
             ("LayerNormalization", ["a", "gamma", "beta"], ["y"], {"epsilon": 1e-3})]
    m = model(nodes, X, ["y"], LN_CONSTS)
    g = check(m, FEED, [fuse_norms], atol=2e-5)
    assert ops(g) == ["fused.RMSNorm", "fused.LayerNorm"] and g.nodes[0].inputs[1].name == "gamma"


def test_batchnorm_scale_plus_activation():
    c = 3
    inits = [init("s", RNG.uniform(0.5, 1.5, c).astype(np.float32)), init("b", RNG.standard_normal(c).astype(np.float32)),
             init("mu", RNG.standard_normal(c).astype(np.float32)), init("v", RNG.uniform(0.5, 1.5, c).astype(np.float32))]
    nodes = [("BatchNormalization", ["x4", "s", "b", "mu", "v"], ["n"], {}, "bn"), ("Relu", ["n"], ["y"], {}, "relu")]
    m = model(nodes, [("x4", [2, 3, 4, 5])], ["y"], inits)
    g = check(m, {"x4": randn((2, 3, 4, 5))}, [fuse_scale, fuse_pointwise])
    assert ops(g) == ["fused.Pointwise"] and g.nodes[0].name == "fusedPointwiseNode(bn, relu)"
