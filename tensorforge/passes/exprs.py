"""Helpers that turn pointwise graph nodes into expression DAGs (fused.Pointwise payloads)."""
from __future__ import annotations

from ..ir.symbolic import broadcast
from ..ops.fused.expr import ExprBuilder, node_expr, scalar_of
from .rewrite import same_shape


def as_expr(node):
    """(expr, inputs) of a pointwise node (an ONNX elementwise op or fused.Pointwise), else None."""
    if node.op == "fused.Pointwise":  # upsampled (indexed) inputs are not plain operands
        return None if node.attrs.get("upsample") else (node.attrs["expr"], list(node.inputs))
    spec = node_expr(node)
    if spec is None:
        return None
    op, attrs, ins = spec
    b = ExprBuilder()
    return b.build(b.op(op, [b.input(i) for i in range(len(ins))], attrs)), ins


def is_pointwise(node) -> bool:
    return ((node.op == "fused.Pointwise" and not node.attrs.get("upsample")) or node_expr(node) is not None) \
        and len(node.outputs) == 1


class Composer:
    """Builds one expression over a growing list of distinct input Values."""

    def __init__(self, inputs=(), inline: bool = True, max_rank: int | None = None):
        self.b = ExprBuilder()
        self.inputs = list(inputs)
        self.inline, self.max_rank = inline, max_rank

    def leaf(self, v) -> int:
        """The expression node reading value v (a literal for one-element constants)."""
        for i, u in enumerate(self.inputs):
            if u is v:
                return self.b.input(i)
        s = scalar_of(v)
        if self.inline and s is not None and (self.max_rank is None or len(v.shape) <= self.max_rank):
            return self.b.const(s, v.dtype)
        self.inputs.append(v)
        return self.b.input(len(self.inputs) - 1)

    def splice(self, expr, args) -> int:
        return self.b.splice(expr, args)

    def node(self, node, args_for) -> int:
        """Splice a pointwise node; args_for(v) gives the expression index of each input value."""
        expr, ins = as_expr(node)
        return self.b.splice(expr, [args_for(v) for v in ins])

    def build(self, out) -> dict:
        return self.b.build(out)

    def covers(self, shape) -> bool:
        """True when the inputs alone broadcast to `shape` (inlined literals dropped no dims)."""
        return bool(self.inputs) and same_shape(broadcast(*[v.shape for v in self.inputs]), shape)
