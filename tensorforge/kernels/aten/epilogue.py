"""The unfused epilogue of aten variants: a fused layer's expression evaluated after the anchor op."""
from __future__ import annotations


def eval_expr(expr, inputs, opset):
    """Evaluate a fused layer's epilogue expression (imported lazily: fused ops are optional)."""
    from ...ops.fused.expr import eval_expr as ev
    return ev(expr, inputs, opset)
