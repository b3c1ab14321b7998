"""After epilogue fusion: a quantized layer's residual (extra) inputs read through a DQ take the
quantized tensor and the DQ's [scale, zero point] instead (TensorRT's residual rule: a quantized
skip input keeps the fused layer quantized end to end); an attention's output Q (the next GEMM's
input Q, after the head merge the attention writes) is done by the attention's store."""
from __future__ import annotations

from ...ir import Graph
from ..rewrite import Decline, Op, Rule, fuse, rule_pass
from .lower import lowered_q
from .params import spec

N_LEAD = 4  # xq, wq, bias, w_scale


def q_extra(g: Graph, m) -> bool:
    """Q<op>(..., e_j = DQ(q_j)) -> Q<op>(..., q_j) with extra_q[j] = [s_j, z_j]."""
    a = m.root
    extra_q = list(a.attrs.get("extra_q") or [])
    done = False
    for j, v in enumerate(a.inputs[N_LEAD:]):
        d = v.producer if v is not None else None
        while len(extra_q) <= j:
            extra_q.append(None)
        if d is None or d.op != "DequantizeLinear" or spec(d) is None or extra_q[j] is not None:
            continue
        extra_q[j] = spec(d)[:2]
        g.set_input(a, N_LEAD + j, d.inputs[0])
        done = True
    if not done:
        return Decline("no residual input is dequantized per tensor")
    a.attrs["extra_q"] = extra_q
    return True


FINISH_RULES = [Rule("QResidual", Op(("fused.QConv", "fused.QGemm", "fused.QMatMul"), any_args=True), q_extra,
                     shared=True)]
quant_residual = rule_pass("quant_residual", FINISH_RULES)


def quant_attention_out(g: Graph) -> Graph:
    """Q(Attention(q, k, v, ...)) -> Attention(q, k, v, ...; out_q = [s, z, type]): the attention's
    tile quantized as it is stored, when its only user is a Q (lowered to its pointwise chain by
    then: lower.lowered_q). Session 10: BERT FP8's 12 such Qs ran as separate pointwise kernels."""
    for att in [n for n in g.nodes if n.op == "fused.Attention" and not n.attrs.get("out_q")]:
        y = att.outputs[0]
        found = lowered_q(g, y)
        if found is None:
            continue
        sp, chain, out = found
        fuse(g, [att] + chain, "fused.Attention", list(att.inputs), {**att.attrs, "out_q": sp}, [out],
             "AttentionQ")
    return g
