"""Convolution fusions that fold into the weights: Conv + BatchNorm, Conv + bias, Pad + Conv."""
from __future__ import annotations

import logging

import torch

from ..ir import Graph
from ..ir.tape_ops import mul_cast
from ..ops.common import known_ints
from .rewrite import Const, Decline, Op, Rule, Var, const_like, fits_into, fuse, rule_pass, scalar

CONVS = ("Conv", "ConvTranspose")
log = logging.getLogger("tensorforge")


def _bn_params(bn):
    """(scale, shift) in float64 of an inference BatchNormalization with constant parameters."""
    if len(bn.outputs) != 1 or bn.attrs.get("training_mode", 0) or any(v.const is None for v in bn.inputs[1:5]):
        return None
    gamma, beta, mean, var = (v.const.double().reshape(-1) for v in bn.inputs[1:5])
    s = gamma / torch.sqrt(var + bn.attrs.get("epsilon", 1e-5))
    return s, beta - mean * s


def _out_channels(conv):
    w = conv.inputs[1].const
    return w.shape[0] if conv.op == "Conv" else w.shape[1] * conv.attrs.get("group", 1)


def _scale_weight(conv, s):
    """w with output channel o multiplied by s[o] (Conv: dim 0; ConvTranspose: grouped dim 1)."""
    w = conv.inputs[1].const  # the product is taken in float64 (s's dtype) and rounded once
    if conv.op == "Conv":
        return mul_cast(w, s.reshape(-1, *([1] * (w.dim() - 1))), w.dtype)
    g = conv.attrs.get("group", 1)
    k = w.shape[2:]
    wg = w.reshape(g, w.shape[0] // g, w.shape[1], *k)
    return mul_cast(wg, s.reshape(g, 1, w.shape[1], *([1] * len(k))), w.dtype).reshape(w.shape)


def _bias(conv):
    b = conv.inputs[2] if len(conv.inputs) > 2 else None
    if b is not None and b.const is None:
        return None
    c = _out_channels(conv)
    return b.const.double() if b is not None else torch.zeros(c, dtype=torch.float64)


def conv_bn(g: Graph, m) -> bool:
    """BN(Conv(x, w, b)) -> Conv(x, w·s, (b − μ)·s + β) with s = γ/√(σ² + ε), per output channel."""
    conv, bn = m["conv"], m.root
    p = _bn_params(bn)
    b = _bias(conv) if conv.inputs[1].const is not None else None
    if p is None:
        return Decline("BatchNormalization in training mode, with several outputs or non-constant parameters")
    if b is None:
        return Decline("conv weight or bias is not constant")
    if p[0].numel() != _out_channels(conv):
        return Decline("BatchNormalization channels differ from the conv's output channels")
    s, t = p
    w = conv.inputs[1]
    new_w = const_like(g, _scale_weight(conv, s), f"{w.name}_bn")
    new_b = const_like(g, (b * s + t).to(w.const.dtype), f"{bn.name}.bias_folded")
    fuse(g, [conv, bn], conv.op, [conv.inputs[0], new_w, new_b], conv.attrs, [bn.outputs[0]], "ConvBN")
    return True


def conv_bias(g: Graph, m) -> bool:
    """Conv(x, w, b) + c -> Conv(x, w, b + c) for c constant per output channel."""
    conv, c = m["conv"], m["c"]
    y = conv.outputs[0]
    b = _bias(conv)
    n = _out_channels(conv) if conv.inputs[1].const is not None else None
    if b is None or n is None:
        return Decline("conv weight or bias is not constant")
    if not fits_into(c.shape, y.shape) or c.dtype != y.dtype:
        return Decline("addend does not broadcast into the conv output or has another dtype")
    full = (1,) * (len(y.shape) - len(c.shape)) + tuple(c.shape)  # c right-aligned to y
    if any(d != 1 for i, d in enumerate(full) if i != 1) or full[1] not in (1, n):
        return Decline("addend is not constant per output channel")
    cv = c.const.double().reshape(-1)
    new_b = const_like(g, (b + (cv if cv.numel() == n else cv.expand(n))).to(c.const.dtype),
                       f"{m.root.name}.bias_folded")
    ins = [conv.inputs[0], conv.inputs[1], new_b]
    fuse(g, [conv, m.root], conv.op, ins, conv.attrs, [m.root.outputs[0]], "ConvBias")
    return True


def pad_conv(g: Graph, m) -> bool:
    """Conv(Pad(x, p, constant 0)) -> Conv(x, pads + p) when p pads spatial dims only."""
    pad, conv = m["pad"], m.root
    x = pad.inputs[0]
    r = len(x.shape)
    if pad.attrs.get("mode", "constant") != "constant" or conv.attrs.get("auto_pad", "NOTSET") not in ("NOTSET", ""):
        return Decline("Pad mode is not constant or the conv uses auto_pad")
    pads = pad.attrs.get("pads") if "pads" in pad.attrs else known_ints(pad.inputs[1])
    value = pad.attrs.get("value", 0.0)
    if len(pad.inputs) > 2 and pad.inputs[2] is not None:
        value = scalar(pad.inputs[2])
    if pads is None or value != 0 or not all(isinstance(p, int) for p in pads):
        return Decline("pads are not constant or the pad value is not 0")
    axes = known_ints(pad.inputs[3]) if len(pad.inputs) > 3 and pad.inputs[3] is not None else list(range(r))
    if axes is None:
        return Decline("Pad axes are not constant")
    full = [0] * (2 * r)
    for i, a in enumerate(axes):
        full[a % r], full[a % r + r] = pads[i], pads[i + len(axes)]
    n = r - 2
    if any(full[i] for i in (0, 1, r, r + 1)) or any(p < 0 for p in full):
        return Decline("Pad pads the batch or channel dim, or crops")
    old = conv.attrs.get("pads", [0] * (2 * n))
    new = [old[i] + full[2 + i] for i in range(n)] + [old[n + i] + full[r + 2 + i] for i in range(n)]
    attrs = dict(conv.attrs, pads=new, auto_pad="NOTSET")
    fuse(g, [pad, conv], "Conv", [x] + list(conv.inputs[1:]), attrs, [conv.outputs[0]], "PadConv")
    return True


def _single_use(g, c) -> bool:
    y = c.outputs[0]
    return len(c.outputs) == 1 and len(y.users) == 1 and not g.is_output(y)


def _const_bias(c) -> bool:
    return (c.op == "Conv" and c.inputs[1].const is not None and len(c.inputs) > 2 and c.inputs[2] is not None
            and c.inputs[2].const is not None)


def residual_bias(g: Graph, m) -> bool:
    """Conv(x1, w1, b1) + Conv(x2, w2, b2) -> Conv(x1, w1, b1 + b2) + Conv(x2, w2): one bias is
    enough for the sum. The conv that keeps it is the one the Add fuses into later (in-branch,
    see fuse_epilogue._in_branch); the other becomes a bias-free convolution, which cuDNN runs as
    one kernel (a bias alone costs torch a separate broadcast add over the whole output)."""
    a, b = m["a"], m["b"]
    if a is b or not (_const_bias(a) and _const_bias(b)):
        return Decline("the same conv twice, or a conv without a constant bias")
    if not (_single_use(g, a) and _single_use(g, b)):
        return Decline("a conv output has other users")
    ya, yb = a.outputs[0], b.outputs[0]
    ba, bb = a.inputs[2].const, b.inputs[2].const
    if ya.dtype != yb.dtype or tuple(ya.shape) != tuple(yb.shape) or ba.shape != bb.shape or ba.dtype != bb.dtype:
        return Decline("the convs' outputs or biases differ in shape or dtype")
    pos = {id(n): i for i, n in enumerate(g.nodes)}

    def rank(c):
        x = c.inputs[0]
        return (x is not None and len(x.users) == 1, pos[id(c)])
    keep, drop = (a, b) if rank(a) >= rank(b) else (b, a)
    new_b = const_like(g, (ba.double() + bb.double()).to(ba.dtype), f"{m.root.name}.bias_merged")
    g.set_input(keep, 2, new_b)
    g.set_input(drop, 2, None)
    drop.inputs = drop.inputs[:2]
    log.info("Moving the bias of %s into %s (ResidualBias)", drop.name, keep.name)
    return True


RULES = [
    Rule("PadConv", Op("Conv", Op("Pad", any_args=True, name="pad"), Var("w"), prefix=True), pad_conv),
    Rule("ConvBN", Op("BatchNormalization", Op(CONVS, any_args=True, name="conv"), prefix=True), conv_bn),
    Rule("ConvBias", Op("Add", Op(CONVS, any_args=True, name="conv"), Const("c", scalar=False)), conv_bias),
    Rule("ResidualBias", Op("Add", Op("Conv", any_args=True, name="a"), Op("Conv", any_args=True, name="b")),
         residual_bias),
]
fuse_conv = rule_pass("fuse_conv", RULES)
