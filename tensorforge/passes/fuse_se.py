"""Squeeze-excitation fusion: GlobalAveragePool → 1x1 Conv → act → 1x1 Conv → HardSigmoid / Sigmoid
→ Mul(x, gate) becomes one fused.SqueezeExcite layer (PP-LCNet, MobileNetV3, EfficientNet blocks).

Runs after fuse_conv (biases added after the convs are folded in) and before fuse_epilogue (which
would otherwise take the activations into the convs). Unfused, a block is 4-6 layers; fused, it is
one layer whose Triton tactic computes the gate in one small kernel and scales x in a second."""
from __future__ import annotations

from ..ir import Graph
from ..ops.fused.se import ACTS
from .rewrite import Alt, Decline, Op, Rule, Var, fuse, rule_pass, same_shape

FLOATS = ("float16", "float32", "float64", "bfloat16")
NOT_1X1 = "a convolution is not 1x1 with unit strides and dilations, no pads and one group"


def _conv(name, data):
    return Op("Conv", data, Var(f"w_{name}"), name=name, prefix=True)


_POOL = Op("GlobalAveragePool", Var("x"), name="pool")
_CONV1 = _conv("conv1", _POOL)
_ACT = Alt(Op(("Relu", "HardSwish"), _CONV1, name="act"),
           Op("Mul", _CONV1, Op("Sigmoid", Var("conv1"), name="sig"), name="act"))
_GATE = Op(("HardSigmoid", "Sigmoid"), Alt(_conv("conv2", _ACT), _conv("conv2", _CONV1)), name="gate")
SE = Op("Mul", Var("z"), _GATE)


def _one_by_one(conv) -> bool:
    """A pointwise convolution: 1x1 kernel, stride / dilation 1, zero pads, one group."""
    a, w = conv.attrs, conv.inputs[1]
    if len(w.shape) not in (2, 4) or any(d != 1 for d in w.shape[2:]):
        return False
    if a.get("group", 1) != 1 or any(s != 1 for s in a.get("strides") or ()) or \
            any(d != 1 for d in a.get("dilations") or ()):
        return False
    return not any(a.get("pads") or ()) and a.get("auto_pad", "NOTSET") in ("NOTSET", "VALID", "")


def _bias(conv, n):
    """The conv's bias Value (None when absent); False when it is not a constant of n channels."""
    b = conv.inputs[2] if len(conv.inputs) > 2 else None
    if b is None:
        return None
    return b if b.const is not None and tuple(b.shape) == (n,) else False


def _act_name(m) -> str:
    act = m.get("act")
    if act is None:
        return ""
    return "SiLU" if act.op == "Mul" else act.op


def squeeze_excite(g: Graph, m) -> bool:
    """x · gate(W2·act(W1·mean_hw(x) + b1) + b2) -> fused.SqueezeExcite(x, W1, b1, W2, b2) for
    constant 1x1 weights, gate = HardSigmoid(α, β) or Sigmoid, act = Relu / HardSwish / SiLU / none."""
    x, z, gate = m["x"], m["z"], m["gate"]
    c1, c2 = m.named["conv1"], m.named["conv2"]  # (m["conv1"] may be its output value)
    if z is not x:
        return Decline("the scaled tensor is not the pooled one")
    if len(x.shape) != 4 or x.dtype not in FLOATS or not isinstance(x.shape[1], int):
        return Decline("x is not a 4-D floating tensor with a known channel count")
    w1, w2 = c1.inputs[1], c2.inputs[1]
    if w1.const is None or w2.const is None:
        return Decline("a convolution weight is not constant")
    if not (_one_by_one(c1) and _one_by_one(c2)):
        return Decline(NOT_1X1)
    c, cr = x.shape[1], w1.shape[0]
    if tuple(w1.shape[:2]) != (cr, c) or tuple(w2.shape[:2]) != (c, cr):
        return Decline("the gate does not have x's channels (C -> Cr -> C)")
    if not same_shape(m.root.outputs[0].shape, x.shape) or m.root.outputs[0].dtype != x.dtype:
        return Decline("the scale does not broadcast the [N, C, 1, 1] gate onto x")
    b1, b2 = _bias(c1, cr), _bias(c2, c)
    if b1 is False or b2 is False:
        return Decline("a convolution bias is not constant")
    if any(v.dtype != x.dtype for v in (w1, w2, b1, b2) if v is not None):
        return Decline("weights and x differ in dtype")
    act = _act_name(m)
    if act not in ACTS:
        return Decline(f"unsupported activation {act}")
    attrs = {"act1": act, "gate": gate.op}
    if gate.op == "HardSigmoid":
        attrs.update(alpha=float(gate.attrs.get("alpha", 0.2)), beta=float(gate.attrs.get("beta", 0.5)))
    fuse(g, m.nodes, "fused.SqueezeExcite", [x, w1, b1, w2, b2], attrs, [m.root.outputs[0]], "SqueezeExcite")
    return True


RULES = [Rule("SqueezeExcite", SE, squeeze_excite)]
fuse_se = rule_pass("fuse_se", RULES)
