"""contrib_to_onnx: com.microsoft ops become ONNX ops, which the usual fusions then absorb."""
import numpy as np
from onnx import helper

from tensorforge.passes import contrib_to_onnx

from .util import check, init, model, ops, randn

MS = "com.microsoft"


def ms(nodes, inputs, outputs, inits=()):
    protos = [helper.make_node(op, ins, outs, name=name, domain=MS, **attrs) for op, ins, outs, attrs, name in nodes]
    m = model(protos, inputs, outputs, inits)
    m.opset_import.append(helper.make_opsetid(MS, 1))
    return m


X = [("x", [2, 5, 8])]
FEED = {"x": randn((2, 5, 8), seed=1, lo=-3, hi=3), "s": randn((2, 5, 8), seed=2)}
B8 = init("b", randn((8,), seed=3))


def test_gelu_family_become_gelu():
    for op, ins, inits, approx in (("Gelu", ["x"], [], "none"), ("BiasGelu", ["x", "b"], [B8], "none"),
                                   ("FastGelu", ["x", "b"], [B8], "tanh"), ("FastGelu", ["x"], [], "tanh")):
        g = check(ms([(op, ins, ["y"], {}, "act")], X, ["y"], inits), FEED, [contrib_to_onnx])
        assert ops(g)[-1] == "Gelu" and g.nodes[-1].attrs["approximate"] == approx and g.nodes[-1].name == "act"
        assert all(n.domain == "" for n in g.nodes)


def test_quick_gelu_and_bias_add():
    g = check(ms([("QuickGelu", ["x"], ["y"], {"alpha": 1.5}, "q")], X, ["y"]), FEED, [contrib_to_onnx])
    assert ops(g) == ["Mul", "Sigmoid", "Mul"]
    g = check(ms([("BiasAdd", ["x", "b", "s"], ["y"], {}, "ba")], X + [("s", [2, 5, 8])], ["y"], [B8]), FEED,
              [contrib_to_onnx])
    assert ops(g) == ["Add", "Add"]


def test_skip_layernorm_fuses_to_layernorm():
    gb = [init("g", randn((8,), seed=4)), init("be", randn((8,), seed=5)), B8]
    m = ms([("SkipLayerNormalization", ["x", "s", "g", "be", "b"], ["y", "", "", "sum"], {"epsilon": 1e-5}, "sln")],
           X + [("s", [2, 5, 8])], ["y", "sum"], gb)
    g = check(m, FEED)  # the whole pipeline
    assert "fused.LayerNorm" in ops(g) and all(n.domain == "" for n in g.nodes)
    # mean / inv_std_var used: no ONNX form, the contrib node stays
    m = ms([("SkipLayerNormalization", ["x", "s", "g"], ["y", "mean"], {}, "sln")], X + [("s", [2, 5, 8])],
           ["y", "mean"], gb[:1])
    assert ops(check(m, FEED, [contrib_to_onnx])) == ["SkipLayerNormalization"]


def test_fused_conv_becomes_conv_act():
    w, b = init("w", randn((4, 3, 3, 3), seed=1)), init("cb", randn((4,), seed=2))
    feed = {"x": randn((1, 3, 6, 6), seed=3), "z": randn((1, 4, 6, 6), seed=4)}
    for act, params in (("Relu", []), ("LeakyRelu", [0.1]), ("Clip", [-0.5, 0.5]), ("HardSigmoid", [0.2, 0.5])):
        attrs = {"activation": act, "pads": [1, 1, 1, 1], **({"activation_params": params} if params else {})}
        m = ms([("FusedConv", ["x", "w", "cb"], ["y"], attrs, "conv1")], [("x", [1, 3, 6, 6])], ["y"], [w, b])
        g = check(m, feed)
        assert ops(g) == ["fused.ConvAct"] if act == "Relu" else "Conv" not in ops(g), (act, ops(g))
    m = ms([("FusedConv", ["x", "w", "cb", "z"], ["y"], {"activation": "Relu", "pads": [1, 1, 1, 1]}, "conv1")],
           [("x", [1, 3, 6, 6]), ("z", [1, 4, 6, 6])], ["y"], [w, b])
    g = check(m, feed)
    assert all(n.domain == "" for n in g.nodes) and len(g.nodes) == 1, ops(g)


def test_fused_gemm_becomes_gemm_act():
    w, c = init("w", randn((6, 8), seed=1)), init("c", randn((6,), seed=2))
    m = ms([("FusedGemm", ["x", "w", "c"], ["y"], {"transB": 1, "activation": "LeakyRelu", "activation_alpha": 0.2},
             "fc")], [("x", [4, 8])], ["y"], [w, c])
    g = check(m, {"x": randn((4, 8), seed=3)})
    assert len(g.nodes) == 1 and g.nodes[0].op.startswith("fused."), ops(g)


def test_unknown_activation_stays():
    w = init("w", randn((6, 8), seed=1))
    m = ms([("FusedGemm", ["x", "w"], ["y"], {"transB": 1, "activation": "ScaledTanh", "activation_alpha": 0.5,
                                               "activation_beta": 2.0}, "fc")], [("x", [4, 8])], ["y"], [w])
    assert ops(check(m, {"x": randn((4, 8), seed=3)}, [contrib_to_onnx])) == ["FusedGemm"]


def test_matmul_nbits_with_constant_weights_becomes_matmul():
    rng = np.random.default_rng(0)
    b = init("B", rng.integers(0, 256, (6, 2, 8)).astype(np.uint8))
    s = init("S", randn((12,), seed=1, lo=0.01, hi=0.1))
    bias = init("bias", randn((6,), seed=2))
    m = ms([("MatMulNBits", ["x", "B", "S", "", "", "bias"], ["y"], {"K": 32, "N": 6, "bits": 4, "block_size": 16},
             "mm")], [("x", [3, 32])], ["y"], [b, s, bias])
    g = check(m, {"x": randn((3, 32), seed=3)}, [contrib_to_onnx], rtol=1e-5, atol=1e-5)
    assert ops(g) == ["MatMul", "Add"] and g.nodes[0].name == "mm"
    g = check(m, {"x": randn((3, 32), seed=3)})  # the whole pipeline: one fused GEMM layer
    assert len(g.nodes) == 1 and g.nodes[0].domain == "", ops(g)


def test_fused_matmul_becomes_matmul():
    w = init("w", randn((6, 8), seed=1))
    m = ms([("FusedMatMul", ["x", "w"], ["y"], {"transB": 1, "alpha": 0.5}, "fm")], [("x", [2, 4, 8])], ["y"], [w])
    g = check(m, {"x": randn((2, 4, 8), seed=3)}, [contrib_to_onnx])
    assert ops(g) == ["Transpose", "MatMul", "Mul"] and all(n.domain == "" for n in g.nodes)
    g = check(m, {"x": randn((2, 4, 8), seed=3)})  # folded transpose, fused scale: one GEMM layer
    assert len(g.nodes) == 1, ops(g)


def test_simplified_layernorms_become_rmsnorm():
    g8 = init("g", randn((8,), seed=4))
    m = ms([("SkipSimplifiedLayerNormalization", ["x", "s", "g", "b"], ["y", "", "", "sum"], {"epsilon": 1e-5},
             "ssln")], X + [("s", [2, 5, 8])], ["y", "sum"], [g8, B8])
    g = check(m, FEED)
    assert "fused.RMSNorm" in ops(g) and all(not n.op.startswith("Skip") for n in g.nodes), ops(g)
    m = model([helper.make_node("SimplifiedLayerNormalization", ["x", "g"], ["y"], name="sln", epsilon=1e-5)],
              X, ["y"], [g8])
    g = check(m, FEED)
    assert ops(g) == ["fused.RMSNorm"] and g.nodes[0].name == "sln"
