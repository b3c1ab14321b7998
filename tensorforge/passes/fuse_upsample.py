"""Upsample fusion: a nearest Resize / Upsample by integer factors that reads in[y // s] (see
ops.nearest) becomes an indexed input of the pointwise layer or Concat that consumes it, which then
reads the small tensor through index arithmetic instead of a materialized s^2-times larger one (FPN
necks: Resize(top) + lateral; DB heads and YOLO necks: Concat(Resize(p5), ...)). The Resize stays for
consumers that cannot index (convs, graph outputs)."""
from __future__ import annotations

from ..ir import Graph
from ..ops.fused.expr import POINTWISE
from ..ops.nearest import integer_factors
from .exprs import as_expr
from .rewrite import Decline, Op, Rule, fuse, rule_pass

RESIZES = ("Resize", "Upsample")


def _factors(g: Graph, v):
    """(Resize node, per-axis factors) when v is the output of a fusable nearest upsample."""
    p = v.producer if v is not None else None
    if p is None or p.op not in RESIZES or p.domain not in ("", "ai.onnx") or v is not p.outputs[0]:
        return None
    f = integer_factors(p, g.opset)
    return (p, f) if f is not None else None


def _compatible(per_axis: dict, factors, rank: int) -> bool:
    """Every upsampled output axis has one factor across the layer's inputs (the kernel splits it once)."""
    off = rank - len(factors)
    for i, f in enumerate(factors):
        if f > 1 and per_axis.setdefault(off + i, f) != f:
            return False
    return True


def _expr_of(node):
    """(expr, inputs, per-input factors) of a pointwise node, or None."""
    if node.op == "fused.Pointwise":
        ins = list(node.inputs)
        return node.attrs["expr"], ins, list(node.attrs.get("upsample") or [None] * len(ins))
    spec = as_expr(node)
    return None if spec is None else (spec[0], list(spec[1]), [None] * len(spec[1]))


def upsample_input(g: Graph, m) -> bool:
    """f(..., Resize_nearest(x, s), ...) -> Pointwise[expr = f, upsample = s at that input](..., x, ...)
    when the resize reads x[y // s] on every axis (integer s, a floor-exact coordinate mode)."""
    node = m.root
    spec = _expr_of(node)
    if spec is None:
        return Decline("the op has no pointwise expression form")
    expr, ins, ups = spec
    rank = len(node.outputs[0].shape)
    per_axis: dict = {}
    for f in ups:
        if f:
            _compatible(per_axis, f, rank)
    resizes = {}
    for i, v in enumerate(ins):
        found = None if ups[i] else _factors(g, v)
        if found is None or not _compatible(dict(per_axis), found[1], rank):
            continue
        _compatible(per_axis, found[1], rank)
        ins[i], ups[i] = found[0].inputs[0], list(found[1])
        resizes[id(found[0])] = found[0]
    _replace(g, node, resizes, "fused.Pointwise", ins, {"expr": expr, "upsample": ups}, "UpsampleFusion",
             lambda origin: f"fusedPointwiseNode({', '.join(origin)})")
    return True if resizes else Decline("no input is a nearest integer-factor Resize")


def concat_input(g: Graph, m) -> bool:
    """Concat(..., Resize_nearest(x, s), ...) -> fused.Concat[upsample = s at that input](..., x, ...): each
    input is copied into its slice of the output through the upsample's index map (no Resize tensor)."""
    node = m.root
    ins = list(node.inputs)
    if any(v is None for v in ins):
        return Decline("an omitted input")
    ups = list(node.attrs.get("upsample") or [None] * len(ins))
    resizes = {}
    for i, v in enumerate(ins):
        found = None if ups[i] else _factors(g, v)
        if found is not None:
            ins[i], ups[i] = found[0].inputs[0], list(found[1])
            resizes[id(found[0])] = found[0]
    _replace(g, node, resizes, "fused.Concat", ins, {"axis": node.attrs["axis"], "upsample": ups},
             "UpsampleConcatFusion", " + ".join)
    return True if resizes else Decline("no input is a nearest integer-factor Resize")


def _replace(g, node, resizes, op, ins, attrs, rule, name_of):
    """node -> op(ins, attrs); a resize read only by node disappears, a shared one stays for its other readers."""
    if not resizes:
        return
    gone = [r for r in resizes.values() if not g.is_output(r.outputs[0])
            and all(u is node for u in r.outputs[0].users)]
    origin = list(dict.fromkeys(o for n in list(resizes.values()) + [node] for o in (n.origin or [n.name])))
    new = fuse(g, gone + [node], op, ins, attrs, [node.outputs[0]], rule, name=name_of(origin))
    new.origin = origin


RULES = [Rule("UpsampleFusion", Op(tuple(POINTWISE) + ("fused.Pointwise",), any_args=True), upsample_input,
              shared=True),
         Rule("UpsampleConcatFusion", Op(("Concat", "fused.Concat"), any_args=True), concat_input, shared=True)]
fuse_upsample = rule_pass("fuse_upsample", RULES)
