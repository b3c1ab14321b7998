"""Pointwise fusion: a maximal tree of elementwise ops (unary, binary with broadcasting, scalar
constants, Where, Cast) whose intermediate values are used only inside it becomes one
fused.Pointwise layer named fusedPointwiseNode(a, b, ...)."""
from __future__ import annotations

from ..ir import Graph
from ..ops.fused.expr import POINTWISE
from .exprs import Composer, is_pointwise
from .rewrite import Decline, Op, Rule, fuse, ordered, rule_pass


def _group(g: Graph, root):
    """The root plus every upstream pointwise node whose output is consumed only by the group."""
    group = {id(root): root}
    changed = True
    while changed:
        changed = False
        for n in list(group.values()):
            for v in n.inputs:
                p = v.producer if v is not None else None
                if p is None or id(p) in group or not is_pointwise(p) or g.is_output(v):
                    continue
                if all(id(u) in group for u in v.users):
                    group[id(p)] = p
                    changed = True
    return ordered(g, group.values())


def _compose(g, nodes, root, inline):
    c = Composer(inline=inline, max_rank=len(root.outputs[0].shape))
    idx = {}

    def arg(v):
        return idx[id(v)] if id(v) in idx else c.leaf(v)
    for n in nodes:
        idx[id(n.outputs[0])] = c.node(n, arg)
    return c, idx[id(root.outputs[0])]


def pointwise(g: Graph, m) -> bool:
    """f1(f2(x, y), f3(z), ...) -> fusedPointwiseNode(x, y, z) = Pointwise[expr = f1(f2(·,·), f3(·))]
    when every intermediate value is used only inside the tree."""
    root = m.root
    if not is_pointwise(root):
        return Decline("not a pointwise node")
    nodes = _group(g, root)
    if len(nodes) < 2:
        return Decline("no single-use pointwise producer to fuse with")
    c, out = _compose(g, nodes, root, inline=True)
    if not c.covers(root.outputs[0].shape):
        c, out = _compose(g, nodes, root, inline=False)
    fuse(g, nodes, "fused.Pointwise", c.inputs, {"expr": c.build(out)}, [root.outputs[0]],
         "PointwiseFusion", pointwise=True)
    return True


RULES = [Rule("PointwiseFusion", Op(tuple(POINTWISE) + ("fused.Pointwise",), any_args=True), pointwise,
              shared=True)]
fuse_pointwise = rule_pass("fuse_pointwise", RULES, reverse=True)
