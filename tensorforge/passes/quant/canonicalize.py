"""Weight canonicalization: constant Q -> DQ pairs become quantized constants behind a DQ, and
weight DQs no quantized layer absorbed become plain constants again."""
from __future__ import annotations

import logging

from ...ir import Graph
from ...ops import registry
from ..rewrite import Decline, Op, Rule, Var, const_like, rule_pass
from .params import same, spec

log = logging.getLogger("tensorforge")


def _params_equal(q, dq) -> bool:
    """The Q and DQ use the same scale / zero point tensors (by value) and axis."""
    def vals(n):
        ins = [v.const for v in n.inputs[1:3] if v is not None]
        return ins, n.attrs.get("axis", 1), n.attrs.get("block_size", 0)
    (a, ax1, b1), (b, ax2, b2) = vals(q), vals(dq)
    return (len(a) == len(b) and ax1 == ax2 and b1 == b2 and
            all(x is not None and y is not None and x.shape == y.shape and bool((x == y).all())
                for x, y in zip(a, b)))


def qdq_weight(g: Graph, m) -> bool:
    """DQ(Q(w, s, z), s, z) -> DQ(wq, s, z) with wq = Q(w) computed now (w constant)."""
    q, dq = m["q"], m.root
    if any(v is not None and v.const is None for v in q.inputs):
        return Decline("the Q's scale or zero point is not constant")
    if not _params_equal(q, dq):
        return Decline("the Q and the DQ use different scales or zero points")
    wq = registry.get("QuantizeLinear").run([None if v is None else v.const for v in q.inputs], q.attrs,
                                            g.opset, 1)[0]
    g.set_input(dq, 0, const_like(g, wq, f"{m['w'].name}_quantized"))
    log.info("Quantizing weight %s (QDQWeight)", m["w"].name)
    return True


CANON_RULES = [Rule("QDQWeight", Op("DequantizeLinear", Op("QuantizeLinear", Var("w", where=lambda v: v.const
                                                                                   is not None), name="q"),
                                    prefix=True), qdq_weight, shared=True)]
quant_canonicalize = rule_pass("quant_canonicalize", CANON_RULES)


def quant_unfold_weights(g: Graph) -> Graph:
    """DQ(constant) that no quantized layer absorbed -> its float constant (folded once, at build)."""
    for n in list(g.nodes):
        if n.op == "DequantizeLinear" and all(v is None or v.const is not None for v in n.inputs):
            out = registry.get(n.op).run([None if v is None else v.const for v in n.inputs], n.attrs, g.opset, 1)[0]
            n.outputs[0].const = out.contiguous()
            g.remove_node(n)
    return g


def has_qdq(g: Graph) -> bool:
    """Whether the graph holds Q/DQ nodes (the build is then strongly typed)."""
    return any(n.op in ("QuantizeLinear", "DequantizeLinear") for n in g.nodes)


__all__ = ["quant_canonicalize", "quant_unfold_weights", "has_qdq", "same", "spec"]
