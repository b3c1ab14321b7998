"""Scale fusion: a BatchNormalization that no convolution absorbed becomes a per-channel scale
and shift (a fused.Pointwise), which pointwise fusion then merges with its activation."""
from __future__ import annotations

from .. import dtypes
from ..ir import Graph
from ..ops.fused.expr import ExprBuilder
from .fuse_conv import _bn_params
from .rewrite import Decline, Op, Rule, const_like, fuse, rule_pass


def bn_scale(g: Graph, m) -> bool:
    """BN(x) -> x·s + t with s = γ/√(σ² + ε), t = β − μ·s (per channel, axis 1)."""
    bn = m.root
    x = bn.inputs[0]
    p = _bn_params(bn)
    if p is None or len(x.shape) < 2 or x.dtype not in ("float16", "float32", "float64", "bfloat16"):
        return Decline("BatchNormalization in training mode, non-constant parameters, rank < 2 or not floating")
    shape = (-1,) + (1,) * (len(x.shape) - 2)
    dt = dtypes.to_torch(x.dtype)
    s = const_like(g, p[0].to(dt).reshape(shape), f"{bn.name}.scale")
    t = const_like(g, p[1].to(dt).reshape(shape), f"{bn.name}.shift")
    b = ExprBuilder()
    out = b.op("Add", [b.op("Mul", [b.input(0), b.input(1)]), b.input(2)])
    fuse(g, [bn], "fused.Pointwise", [x, s, t], {"expr": b.build(out)}, [bn.outputs[0]], "BNScale")
    return True


RULES = [Rule("BNScale", Op("BatchNormalization", any_args=True), bn_scale)]
fuse_scale = rule_pass("fuse_scale", RULES)
