"""The unfused epilogue of aten variants: a fused layer's expression evaluated after the anchor op."""
from __future__ import annotations


def eval_expr(expr, inputs, opset):
    """Evaluate a fused layer's epilogue expression (imported lazily: fused ops are optional)."""
    from ...ops.fused.expr import eval_expr as ev
    return ev(expr, inputs, opset)


def compile_expr(expr, opset, device):
    """fn(inputs) -> tensor evaluating `expr` like eval_expr, compiled once when the kernel is made:
    each node's reference resolved and each constant materialized on `device` here, not per call."""
    import torch

    from ... import dtypes
    from ...ops import registry
    plan = []
    for n in expr["nodes"]:
        op = n["op"]
        if op == "input":
            plan.append((0, n["i"], None, None))
        elif op == "const":
            plan.append((1, torch.full((), n["v"], dtype=dtypes.to_torch(n["dtype"]), device=device), None, None))
        else:
            plan.append((2, registry.get(op).run, tuple(n["args"]), n.get("attrs", {})))
    out = expr["out"]

    def fn(inputs):
        vals = []
        for kind, a, args, attrs in plan:
            vals.append(inputs[a] if kind == 0 else a if kind == 1 else a([vals[i] for i in args], attrs, opset)[0])
        return vals[out]
    return fn
