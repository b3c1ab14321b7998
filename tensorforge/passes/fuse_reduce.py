"""Reduction fusions: Softmax (+ Log), Shuffle + Reduce, Reduce(mean over H,W) -> pooling,
Reduce ops as fused.Reduce with pointwise prologues, and L1 / L2 / sum-of-squares / LogSumExp
recognized from their decomposed forms."""
from __future__ import annotations

import torch

from ..ir import Graph
from ..ops.common import attr_or_input
from ..ir.symbolic import broadcast
from ..ops.fused.expr import identity_expr
from .exprs import Composer, is_pointwise
from .identity import reshape_target
from .rewrite import Op, Rule, Var, fuse, insert_node, rule_pass

KINDS = {"ReduceSum": "sum", "ReduceMean": "mean", "ReduceMax": "max", "ReduceMin": "min",
         "ReduceProd": "prod", "ReduceL1": "l1", "ReduceL2": "l2", "ReduceSumSquare": "sumsquare",
         "ReduceLogSum": "logsum", "ReduceLogSumExp": "logsumexp"}


def _axes(n, rank):
    """Sorted non-negative reduced axes of an ONNX Reduce node, or None (no-op / unknown)."""
    axes = attr_or_input(n, "axes", 1)
    if axes is None and len(n.inputs) > 1 and n.inputs[1] is not None:
        return None  # axes computed at run time
    if not axes:
        if n.attrs.get("noop_with_empty_axes", 0) or rank == 0:
            return None
        axes = list(range(rank))
    return sorted({int(a) % rank for a in axes})


def softmax_op(g: Graph, m) -> bool:
    """Softmax(x, axis) / LogSoftmax(x, axis) -> fused.Softmax / fused.LogSoftmax (opset < 13:
    over the flattened trailing axes from `axis`)."""
    n = m.root
    x = n.inputs[0]
    r = len(x.shape)
    if r == 0:
        return False
    if g.opset >= 13:
        axes = [n.attrs.get("axis", -1) % r - r]
    else:
        axes = list(range(n.attrs.get("axis", 1) % r - r, 0))
    fuse(g, [n], "fused." + n.op, [x], {"axes": axes}, [n.outputs[0]], n.op)
    return True


def softmax_log(g: Graph, m) -> bool:
    """Log(Softmax(x)) -> LogSoftmax(x)."""
    sm = m["sm"]
    fuse(g, [sm, m.root], "fused.LogSoftmax", [m["x"]], dict(sm.attrs), [m.root.outputs[0]], "SoftmaxLog")
    return True


def mean_to_pool(g: Graph, m) -> bool:
    """ReduceMean / ReduceMax(x[N,C,*S], axes=S) -> GlobalAveragePool / GlobalMaxPool(x)
    (+ Reshape when keepdims=0)."""
    n, x = m.root, m["x"]
    r = len(x.shape)
    if r < 3 or _axes(n, r) != list(range(2, r)) or x.dtype not in ("float16", "float32", "float64", "bfloat16"):
        return False
    op = "GlobalAveragePool" if n.op == "ReduceMean" else "GlobalMaxPool"
    y = n.outputs[0]
    if n.attrs.get("keepdims", 1):
        fuse(g, [n], op, [x], {}, [y], "ReduceToPool")
        return True
    pooled = insert_node(g, n, op, [x], base=f"{n.name}.pool", dtype=x.dtype,
                         shape=tuple(x.shape[:2]) + (1,) * (r - 2), origin=list(n.origin))
    shape = g.const(torch.tensor([0, 0], dtype=torch.int64), g.unique_name("shape"))
    fuse(g, [n], "Reshape", [pooled, shape], {}, [y], "ReduceToPool")
    return True


def shuffle_reduce(g: Graph, m) -> bool:
    """Reduce(Transpose(x, p), axes) -> Reduce(x, p[axes]) when the kept axes stay in order
    (keepdims=1: a Reshape view restores the kept size-1 axes)."""
    n, t, x = m.root, m["t"], m["x"]
    r = len(x.shape)
    axes = _axes(n, r)
    if axes is None:
        return False
    perm = t.attrs.get("perm", list(range(r))[::-1])
    kept = [perm[i] for i in range(r) if i not in axes]
    if kept != sorted(kept):
        return False
    new_axes = sorted(perm[a] - r for a in axes)
    y = n.outputs[0]
    attrs = {"kind": KINDS[n.op], "axes": new_axes, "keepdims": 0}
    if not n.attrs.get("keepdims", 1):
        fuse(g, [t, n], "fused.Reduce", [x], attrs, [y], "ShuffleReduce")
        return True
    red_shape = tuple(x.shape[i] for i in range(r) if i - r not in new_axes)
    tgt = reshape_target(g, red_shape, y.shape)
    if tgt is None:
        return False
    red = g.new_value(f"{n.name}.reduced", y.dtype, red_shape)
    new = fuse(g, [t, n], "fused.Reduce", [x], attrs, [red], "ShuffleReduce")
    g.add_node("Reshape", [red, tgt], [y], name=g.unique_node_name(f"{n.name}.reshape"), origin=[],
               index=g.nodes.index(new) + 1)
    return True


def reduce_op(g: Graph, m) -> bool:
    """ReduceSum/Mean/Max/Min/Prod/L1/L2/SumSquare/LogSum/LogSumExp(x, axes) -> fused.Reduce."""
    n = m.root
    x = n.inputs[0]
    axes = _axes(n, len(x.shape))
    if axes is None:
        return False
    r = len(x.shape)
    attrs = {"kind": KINDS[n.op], "axes": [a - r for a in axes], "keepdims": int(n.attrs.get("keepdims", 1))}
    fuse(g, [n], "fused.Reduce", [x], attrs, [n.outputs[0]], n.op)
    return True


def reduce_prologue(g: Graph, m) -> bool:
    """Reduce(f(a, b, ...)) -> Reduce[prologue=f](a, b, ...) for a single-use pointwise f."""
    n = m.root
    ins = list(n.inputs)
    pro = n.attrs.get("prologue") or identity_expr()
    shape = broadcast(*[v.shape for v in ins])
    for i, v in enumerate(ins):
        p = v.producer
        if p is None or not is_pointwise(p) or len(v.users) != 1 or g.is_output(v):
            continue
        c = Composer(max_rank=len(shape))
        args = [c.node(p, c.leaf) if j == i else c.leaf(u) for j, u in enumerate(ins)]
        out = c.splice(pro, args)
        if not c.covers(shape):
            continue
        fuse(g, [p, n], "fused.Reduce", c.inputs, dict(n.attrs, prologue=c.build(out)), [n.outputs[0]],
             "ReducePrologue")
        return True
    return False


def _pending(g, red) -> bool:
    """True while a single-use pointwise producer is still to be absorbed as a prologue."""
    v = red.inputs[0]
    return v.producer is not None and is_pointwise(v.producer) and len(v.users) == 1 and not g.is_output(v)


def _special(kind, ops):
    def rule(g: Graph, m) -> bool:
        n = m.root
        pro = n.attrs.get("prologue")
        if n.attrs["kind"] != "sum" or not pro or len(n.inputs) != 1 or not _is_unary_of_input(pro, ops):
            return False
        fuse(g, [n], "fused.Reduce", [n.inputs[0]], dict(n.attrs, kind=kind, prologue=None),
             [n.outputs[0]], kind.upper())
        return True
    rule.__doc__ = f"Reduce[sum](prologue={'|'.join(ops)}(x)) -> Reduce[{kind}](x)"
    return rule


def _is_unary_of_input(expr, ops) -> bool:
    """True when expr is op(x) or x*x / Pow(x, 2) for `ops` including 'Square'."""
    nodes = expr["nodes"]
    out = nodes[expr["out"]]
    if "Square" in ops:
        if out["op"] == "Mul" and out["args"][0] == out["args"][1] and nodes[out["args"][0]]["op"] == "input":
            return True
        if out["op"] == "Pow" and nodes[out["args"][0]]["op"] == "input" and \
                nodes[out["args"][1]] == {"op": "const", "v": 2.0, "dtype": nodes[out["args"][1]].get("dtype")}:
            return True
        return False
    return out["op"] in ops and len(out["args"]) == 1 and nodes[out["args"][0]]["op"] == "input"


def _finish(kind, outer, inner_kind, inner_ops=None):
    def rule(g: Graph, m) -> bool:
        red = m["red"]
        if red.attrs["kind"] != inner_kind or len(red.inputs) != 1 or _pending(g, red):
            return False
        pro = red.attrs.get("prologue")
        if inner_ops is None and pro:
            return False
        if inner_ops is not None and (not pro or not _is_unary_of_input(pro, inner_ops)):
            return False
        attrs = dict(red.attrs, kind=kind, prologue=None)
        fuse(g, [red, m.root], "fused.Reduce", [red.inputs[0]], attrs, [m.root.outputs[0]], kind.upper())
        return True
    rule.__doc__ = f"{outer}(Reduce[{inner_kind}]({'|'.join(inner_ops or ['x'])})) -> Reduce[{kind}](x)"
    return rule


_RED = Op("fused.Reduce", any_args=True, name="red")
RULES = [
    Rule("SoftmaxOp", Op(("Softmax", "LogSoftmax"), any_args=True), softmax_op),
    Rule("SoftmaxLog", Op("Log", Op("fused.Softmax", Var("x"), name="sm")), softmax_log),
    Rule("ReduceToPool", Op(("ReduceMean", "ReduceMax"), Var("x"), prefix=True), mean_to_pool),
    Rule("ShuffleReduce", Op(tuple(KINDS), Op("Transpose", Var("x"), name="t"), prefix=True), shuffle_reduce),
    Rule("ReduceOp", Op(tuple(KINDS), any_args=True), reduce_op),
    Rule("ReducePrologue", Op("fused.Reduce", any_args=True), reduce_prologue),
    Rule("LogSumExp", Op("Log", _RED), _finish("logsumexp", "Log", "sum", ("Exp",))),
    Rule("LogSum", Op("Log", _RED), _finish("logsum", "Log", "sum")),
    Rule("L2Norm", Op("Sqrt", _RED), _finish("l2", "Sqrt", "sumsquare")),
    Rule("L2NormSquare", Op("Sqrt", _RED), _finish("l2", "Sqrt", "sum", ("Square",))),
    Rule("SumSquare", Op("fused.Reduce", any_args=True), _special("sumsquare", ("Square",))),
    Rule("L1Norm", Op("fused.Reduce", any_args=True), _special("l1", ("Abs",))),
]
fuse_reductions = rule_pass("fuse_reductions", RULES)
