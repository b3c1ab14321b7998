"""Squeeze-excitation fusion (passes/fuse_se): fires on SE blocks, declines on variants with a reason,
and the references before and after agree on random inputs."""
import numpy as np
import pytest

from tensorforge import frontend, passes
from tensorforge.passes import PipelineStats, fuse_conv, fuse_se
from tensorforge.testing import check_against_ort

from .util import check, init, model, node, ops, randn

C, CR = 12, 3
X = [("x", [3, 12, 5, 7])]
FEED = {"x": randn((3, 12, 5, 7), seed=3, lo=-2.0, hi=2.0)}


def _inits(seed=0, w1=(CR, C, 1, 1), w2=(C, CR, 1, 1)):
    rng = np.random.default_rng(seed)
    return [init("w1", rng.standard_normal(w1).astype(np.float32) * 0.5),
            init("b1", rng.standard_normal(w1[0]).astype(np.float32) * 0.2),
            init("w2", rng.standard_normal(w2).astype(np.float32) * 0.5),
            init("b2", rng.standard_normal(w2[0]).astype(np.float32) * 0.2)]


def _se(act="Relu", gate="HardSigmoid", swap=False, extra=()):
    """x -> SE(x) nodes: pool, conv1, act, conv2, gate, mul (operands swapped if asked)."""
    nodes = [("GlobalAveragePool", ["x"], ["p"], {}, "pool"), ("Conv", ["p", "w1", "b1"], ["c1"], {}, "conv1")]
    h = "c1"
    if act == "SiLU":
        nodes += [("Sigmoid", ["c1"], ["sg"], {}, "sig1"), ("Mul", ["c1", "sg"], ["h"], {}, "silu1")]
        h = "h"
    elif act:
        nodes.append((act, ["c1"], ["h"], {}, "act1"))
        h = "h"
    nodes.append(("Conv", [h, "w2", "b2"], ["c2"], {}, "conv2"))
    attrs = {"alpha": 1 / 6, "beta": 0.5} if gate == "HardSigmoid" else {}
    nodes.append((gate, ["c2"], ["s"], attrs, "gate"))
    nodes.append(("Mul", ["s", "x"] if swap else ["x", "s"], ["y"], {}, "scale"))
    return nodes + list(extra)


def _declined(m, reason_part):
    """Run the SE rule (after fuse_conv) and return the decline reasons it recorded."""
    stats = PipelineStats()
    g = passes.run_pipeline(frontend.load(m), [fuse_conv, fuse_se], check=True, stats=stats)
    reasons = [why for p in stats.passes for (_, why) in p.declines]
    assert "fused.SqueezeExcite" not in ops(g)
    assert any(reason_part in r for r in reasons), reasons
    return g


@pytest.mark.parametrize("act,gate,swap", [("Relu", "HardSigmoid", False), ("HardSwish", "HardSigmoid", True),
                                           ("SiLU", "Sigmoid", False), ("", "Sigmoid", True)])
def test_se_fires_and_matches_reference(act, gate, swap):
    m = model(_se(act, gate, swap), X, ["y"], _inits())
    g = check(m, FEED, [fuse_conv, fuse_se])
    n = node(g, "fused.SqueezeExcite")
    assert ops(g) == ["fused.SqueezeExcite"]
    assert n.attrs["act1"] == act and n.attrs["gate"] == gate
    assert n.name.startswith("pool + conv1") and n.name.endswith("scale")


def test_se_bias_added_after_conv_is_folded_first():
    """Paddle's export: Conv without bias + Add of a [1, Cr, 1, 1] constant (ConvBias folds it)."""
    nodes = _se()
    nodes[1] = ("Conv", ["p", "w1"], ["c0"], {}, "conv1")
    nodes.insert(2, ("Add", ["c0", "b1r"], ["c1"], {}, "add1"))
    ins = _inits() + [init("b1r", randn((1, CR, 1, 1), seed=5))]
    g = check(model(nodes, X, ["y"], ins), FEED, [fuse_conv, fuse_se])
    assert ops(g) == ["fused.SqueezeExcite"]


def test_se_full_pipeline_matches_ort():
    """Through the whole pipeline and the CPU engine the fused model agrees with ONNX Runtime."""
    m = model(_se("HardSwish"), X, ["y"], _inits())
    assert "fused.SqueezeExcite" in ops(check(m, FEED))
    check_against_ort(m, FEED, rtol=1e-5, atol=1e-5)


def test_se_declines_non_constant_weights():
    m = model(_se(), X + [("w2", [C, CR, 1, 1])], ["y"], _inits()[:2] + _inits()[3:])
    _declined(m, "weight is not constant")


def test_se_declines_multi_use_intermediate():
    m = model(_se(extra=[("Relu", ["c2"], ["y2"], {}, "other")]), X, ["y", "y2"], _inits())
    _declined(m, "users outside")


def test_se_declines_gate_without_channels():
    """A gate of one channel ([N, 1, 1, 1]) broadcasts over C: not a per-channel SE scale."""
    m = model(_se(), X, ["y"], _inits(w2=(1, CR, 1, 1)))
    _declined(m, "x's channels")


def test_se_declines_scaling_another_tensor():
    nodes = _se()
    nodes[-1] = ("Mul", ["x2", "s"], ["y"], {}, "scale")
    _declined(model(nodes, X + [("x2", [3, 12, 5, 7])], ["y"], _inits()), "not the pooled one")


def test_se_declines_strided_conv():
    nodes = _se()
    nodes[1] = ("Conv", ["p", "w1", "b1"], ["c1"], {"pads": [1, 1, 1, 1]}, "conv1")
    nodes[3] = ("Conv", ["h", "w2", "b2"], ["c2"], {"kernel_shape": [3, 3]}, "conv2")
    _declined(model(nodes, X, ["y"], _inits(w2=(C, CR, 3, 3))), "not 1x1")


def test_efficientnet_style_reduce_mean_silu_sigmoid_full_pipeline():
    """ReduceMean(x, [2, 3], keepdims) becomes GlobalAveragePool first (fuse_reductions), then SE fuses."""
    nodes = _se("SiLU", "Sigmoid")
    nodes[0] = ("ReduceMean", ["x"], ["p"], {"axes": [2, 3], "keepdims": 1}, "mean")
    m = model(nodes, X, ["y"], _inits(), opset=13)
    g = check(m, FEED)
    assert ops(g) == ["fused.SqueezeExcite"] and node(g, "fused.SqueezeExcite").attrs["act1"] == "SiLU"
    check_against_ort(m, FEED, rtol=1e-5, atol=1e-5)


def test_se_without_biases():
    nodes = _se("HardSwish")
    nodes[1] = ("Conv", ["p", "w1"], ["c1"], {}, "conv1")
    nodes[3] = ("Conv", ["h", "w2"], ["c2"], {}, "conv2")
    ins = _inits()
    g = check(model(nodes, X, ["y"], [ins[0], ins[2]]), FEED)
    n = node(g, "fused.SqueezeExcite")
    assert n.inputs[2] is None and n.inputs[4] is None
