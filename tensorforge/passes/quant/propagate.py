"""Q/DQ propagation by the commute tables: DQ moves forward (dequantize as late as possible),
Q moves backward (quantize as early as possible), so that data movement runs on quantized data
and Q/DQ meet the layers that absorb them."""
from __future__ import annotations

import torch

from ... import dtypes
from ...ir import Graph
from ..rewrite import Decline, Op, Rule, const_like, rule_pass
from .params import same, spec
from .tables import COMMUTES_WITH_DQ, COMMUTES_WITH_Q


def _dq_of(v):
    n = v.producer if v is not None else None
    return n if n is not None and n.op == "DequantizeLinear" and spec(n) is not None else None


def _pad_value_ok(op) -> bool:
    if op.attrs.get("mode", "constant") != "constant":
        return False
    v = op.inputs[2] if len(op.inputs) > 2 else None
    val = op.attrs.get("value", 0.0) if v is None else (float(v.const.reshape(-1)[0]) if v.const is not None
                                                          and v.const.numel() == 1 else None)
    return val == 0.0


def dq_forward(g: Graph, m) -> bool:
    """op(DQ(q), c...) -> DQ(op(q, c...)) for op in COMMUTES_WITH_DQ (Concat: every input a DQ with
    one [scale, zero point]; Pad: constant 0, which becomes the zero point)."""
    op = m.root
    data = op.inputs if op.op == "Concat" else op.inputs[:1]
    dqs = [_dq_of(v) for v in data]
    if any(d is None for d in dqs):
        return Decline("an input is not a per-tensor DQ")
    s = spec(dqs[0])
    if not all(same(spec(d), s) for d in dqs):
        return Decline("Concat inputs are dequantized with different scales or zero points")
    if op.op == "Pad" and not _pad_value_ok(op):
        return Decline("Pad is not constant-0 padding")
    if op.op == "MaxPool" and len(op.outputs) > 1:
        return Decline("MaxPool with indices")
    y, dq0 = op.outputs[0], dqs[0]
    ins = [d.inputs[0] for d in dqs] + list(op.inputs[len(dqs):])
    if op.op == "Pad":
        if s[2] not in ("uint8", "int8"):
            return Decline("float8 padding")
        ins = (ins + [None, None])[:max(3, len(ins))]
        ins[2] = const_like(g, torch.tensor(s[1], dtype=dtypes.to_torch(s[2])), f"{op.name}.pad_zero_point")
    idx = g.nodes.index(op)
    g.remove_node(op)
    qv = g.new_value(f"{y.name}_q", s[2], y.shape)
    g.add_node(op.op, ins, [qv], op.attrs, name=op.name, origin=op.origin, index=idx)
    g.add_node("DequantizeLinear", [qv] + list(dq0.inputs[1:]), [y], dict(dq0.attrs),
               name=g.unique_node_name(f"{dq0.name}_moved"), origin=list(dq0.origin or [dq0.name]), index=idx + 1)
    return True


def _attention_output(v, depth: int = 4) -> bool:
    """Whether v is an activation-by-activation MatMul's result (attention's probabilities x V), through
    Reshape / Transpose only: the head merge that the attention layer writes in its own store."""
    for _ in range(depth):
        n = v.producer
        if n is None:
            return False
        if n.op == "MatMul":
            return all(i is not None and i.const is None for i in n.inputs[:2])
        if n.op not in ("Reshape", "Transpose"):
            return False
        v = n.inputs[0]
    return False


def q_backward(g: Graph, m) -> bool:
    """Q(op(x)) -> op(Q(x)) for op in COMMUTES_WITH_Q whose output only the Q reads; not into the
    head merge after attention (the fused attention layer absorbs that Transpose / Reshape into its
    store: a Q moved before them would leave both as 8-bit copy layers; session 9, BERT FP8 bs 32 on
    the H200: 24 such layers, 0.21 ms)."""
    q, op = m.root, m["op"]
    x = op.inputs[0]
    if _dq_of(x) is not None:
        return Decline("the op reads a DQ (DQ forward handles it)")
    if op.op in ("Reshape", "Transpose") and _attention_output(x):
        return Decline("the head merge after attention (the attention layer writes it)")
    if spec(q) is None:
        return Decline("the Q is not per-tensor with constant parameters")
    if op.op == "MaxPool" and len(op.outputs) > 1:
        return Decline("MaxPool with indices")
    y = q.outputs[0]
    idx = g.nodes.index(op)
    g.remove_node(q)
    g.remove_node(op)
    xq = g.new_value(f"{x.name}_q", y.dtype, x.shape)
    g.add_node("QuantizeLinear", [x] + list(q.inputs[1:]), [xq], dict(q.attrs), name=q.name,
               origin=list(q.origin or [q.name]), index=idx)
    g.add_node(op.op, [xq] + list(op.inputs[1:]), [y], op.attrs, name=op.name, origin=op.origin, index=idx + 1)
    return True


def relu_q(g: Graph, m) -> bool:
    """Q(Relu(x)) -> Q(x) when the Q's zero point is its type's minimum (the Q clamps there)."""
    q, relu = m.root, m["op"]
    s = spec(q)
    if s is None or s[2] not in ("uint8", "int8") or s[1] != torch.iinfo(dtypes.to_torch(s[2])).min:
        return Decline("the Q's zero point is not its type's minimum")
    g.set_input(q, 0, relu.inputs[0])
    return True


PROPAGATE_RULES = [
    Rule("DQForward", Op(tuple(COMMUTES_WITH_DQ), any_args=True), dq_forward, shared=True),
    Rule("QBackward", Op("QuantizeLinear", Op(tuple(COMMUTES_WITH_Q), any_args=True, name="op"), prefix=True),
         q_backward),
    Rule("ReluQ", Op("QuantizeLinear", Op("Relu", any_args=True, name="op"), prefix=True), relu_q),
]
quant_propagate = rule_pass("quant_propagate", PROPAGATE_RULES)
