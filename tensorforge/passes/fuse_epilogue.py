"""Epilogue fusion: pointwise work after a Conv / Gemm / MatMul / LayerNorm / RMSNorm runs inside
that layer (bias + activation chains, residual Add + activation, per-channel scales)."""
from __future__ import annotations

from ..ir import Graph
from ..ops.fused.epilogue import CONV_ATTRS
from ..ops.fused.expr import POINTWISE, identity_expr
from .exprs import Composer, as_expr
from .rewrite import Decline, Op, Rule, fuse, rule_pass, same_shape

# anchor op -> (fused op, number of leading non-epilogue inputs)
ANCHORS = {"Conv": ("fused.ConvAct", 3), "ConvTranspose": ("fused.ConvAct", 3),
           "fused.ConvAct": ("fused.ConvAct", 3), "Gemm": ("fused.GemmAct", 3),
           "fused.GemmAct": ("fused.GemmAct", 3), "MatMul": ("fused.MatMulAct", 3),
           "fused.MatMulAct": ("fused.MatMulAct", 3), "fused.LayerNorm": ("fused.LayerNorm", 3),
           "fused.RMSNorm": ("fused.RMSNorm", 2), "fused.QConv": ("fused.QConv", 4),
           "fused.QGemm": ("fused.QGemm", 4), "fused.QMatMul": ("fused.QMatMul", 4)}


def _anchor(g, v, p):
    """The anchor producing v if p is v's only user and v is not a graph output."""
    a = v.producer
    if a is None or a.op not in ANCHORS or v is not a.outputs[0] or len(a.outputs) != 1 or g.is_output(v):
        return None
    return a if all(u is p for u in v.users) else None


def _split(a):
    """(fused op, leading inputs padded with None, extra inputs, attrs) of an anchor."""
    op, k = ANCHORS[a.op]
    lead = list(a.inputs[:k]) + [None] * (k - len(a.inputs[:k]))
    attrs = dict(a.attrs)
    if a.op in ("Conv", "ConvTranspose"):
        attrs = {k2: v for k2, v in attrs.items() if k2 in CONV_ATTRS}
        attrs["transpose"] = int(a.op == "ConvTranspose")
    if a.op == "MatMul":
        attrs = {"alpha": 1.0}
    return op, lead, list(a.inputs[k:]), attrs


def _in_branch(a) -> bool:
    """The anchor's data input has no other reader (it sits inside a branch, not at a fork).

    When both operands of a residual Add come from anchors (ResNet's downsample blocks: conv3 and
    the downsample conv), the Add is fused into the in-branch one (conv3): the fork-side anchor
    then depends only on the block input, so it can run early or on an aux stream, and the fused
    layer gets the same form as every other residual block. Otherwise the latest anchor wins."""
    x = a.inputs[0] if a.inputs else None
    return x is not None and len(x.users) == 1


def epilogue(g: Graph, m) -> bool:
    """Anchor(...) -> f(y, e...) == Anchor[epilogue = f ∘ epilogue](..., e...) for a pointwise f
    whose other operands broadcast into the anchor's output (its shape unchanged)."""
    p = m.root
    if as_expr(p) is None:
        return Decline("the op has no pointwise expression form")
    y_out = p.outputs[0]
    cands = [a for a in (_anchor(g, v, p) for v in p.inputs if v is not None) if a is not None]
    if not cands:
        return Decline("no operand comes from an anchor (Conv/Gemm/MatMul/norm) read only here")
    cands = [a for a in cands if same_shape(a.outputs[0].shape, y_out.shape)]
    if not cands:
        return Decline("the result's shape differs from the anchor's output shape")
    pos = {id(n): i for i, n in enumerate(g.nodes)}
    a = max(cands, key=lambda n: (_in_branch(n), pos[id(n)]))
    op, lead, extra, attrs = _split(a)
    acc = a.outputs[0]
    c = Composer([acc] + extra, max_rank=len(acc.shape))
    e = c.splice(attrs.get("epilogue") or identity_expr(), [c.leaf(v) for v in [acc] + extra])
    out = c.node(p, lambda v: e if v is acc else c.leaf(v))
    if any(v is acc for v in c.inputs[1:]):
        return Decline("the anchor's output is read outside the expression tree")
    if not c.covers(acc.shape):
        return Decline("an epilogue operand does not broadcast into the anchor's output")
    attrs["epilogue"] = c.build(out)
    fuse(g, [a, p], op, lead + c.inputs[1:], attrs, [y_out], f"{op.split('.')[1]}Epilogue")
    return True


RULES = [Rule("Epilogue", Op(tuple(POINTWISE) + ("fused.Pointwise",), any_args=True), epilogue)]
fuse_epilogue = rule_pass("fuse_epilogue", RULES)
