"""After epilogue fusion: a quantized layer's residual (extra) inputs read through a DQ take the
quantized tensor and the DQ's [scale, zero point] instead (TensorRT's residual rule: a quantized
skip input keeps the fused layer quantized end to end); an attention's output Q (the next GEMM's
input Q, after the head merge the attention writes) is done by the attention's store."""
from __future__ import annotations

from ...ir import Graph
from ..exprs import Composer
from ..fuse_epilogue import ANCHORS
from ..rewrite import Decline, Op, Rule, fuse, rule_pass, same_shape
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


FAKE_Q_TO = (17, 3, 2)  # Cast targets of a lowered Q: float8e4m3fn, int8, uint8 (TensorProto)
OPERAND_ANCHORS = ("fused.QConv", "fused.QGemm", "fused.QMatMul", "fused.ConvAct", "fused.GemmAct", "fused.MatMulAct")


def _fake_quant(p) -> bool:
    """A fused.Pointwise that rounds through a quantized type and returns to a float one (a Q -> DQ pair left
    on an activation; a Q alone, whose result is quantized, is not one)."""
    e = p.attrs.get("expr") if p is not None and p.op == "fused.Pointwise" and not p.attrs.get("upsample") else None
    if not e or len(p.outputs) != 1:
        return False
    quantizes = [nd["op"] == "Cast" and nd.get("attrs", {}).get("to") in FAKE_Q_TO for nd in e["nodes"]]
    return any(quantizes) and not quantizes[e["out"]]


def inline_operand(g: Graph, m) -> bool:
    """Anchor[epilogue f](..., e) with e = P(x) a fake-quant pointwise read only here ->
    Anchor[epilogue f(..., P(x))](..., x): the Q -> DQ round trip of a residual's skip input runs in the
    epilogue that reads it instead of as a kernel of its own. Session 11: ViT-B/16 FP8 (pre-norm, the skip
    input of each residual Add quantized as ModelOpt places it) had 25 such kernels, 0.21 ms of 2.17."""
    a = m.root
    k = ANCHORS[a.op][1]
    if not a.attrs.get("epilogue"):
        return Decline("no epilogue reads an extra input")
    if any(q is not None for q in a.attrs.get("extra_q") or []):
        return Decline("a residual input is read quantized (extra_q)")
    acc, extras = a.outputs[0], list(a.inputs[k:])
    take = [v for v in extras if v is not None and _fake_quant(v.producer) and all(u is a for u in v.users)
            and not g.is_output(v) and same_shape(v.shape, acc.shape)]
    if not take:
        return Decline("no extra input is a fake-quant pointwise read only here")
    c = Composer([acc], max_rank=len(acc.shape))
    args = [c.leaf(acc)] + [c.node(v.producer, c.leaf) if any(v is t for t in take) else c.leaf(v) for v in extras]
    out = c.splice(a.attrs["epilogue"], args)
    if not c.covers(acc.shape):
        return Decline("an epilogue operand does not broadcast into the output")
    lead = list(a.inputs[:k]) + [None] * (k - len(a.inputs[:k]))
    fuse(g, [v.producer for v in take] + [a], a.op, lead + c.inputs[1:], {**a.attrs, "epilogue": c.build(out)},
         list(a.outputs), "EpilogueOperand")
    return True


quant_inline_operands = rule_pass("quant_inline_operands", [
    Rule("EpilogueOperand", Op(OPERAND_ANCHORS, any_args=True), inline_operand)])
