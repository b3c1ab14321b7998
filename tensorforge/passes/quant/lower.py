"""Q/DQ that no quantized layer absorbed become pointwise expressions (exact: the same float32
operations as the Q/DQ references), which then fuse into neighbouring epilogues and pointwise
layers: Q(x) = Cast(Clip(Round(x / s) + z, lo, hi)); DQ(q) = (Cast(q) − z) · s. In an FP16 / BF16
model the input is cast to float32 first and the DQ result cast back to the scale's type, as the
references compute."""
from __future__ import annotations

import logging

import torch
from onnx import TensorProto

from ... import dtypes
from ...ir import Graph
from ...ops.fused.qdq_expr import LOW, dq_steps, q_steps
from .params import F8, spec

log = logging.getLogger("tensorforge")
def _emit(g: Graph, node, steps):
    """Replace `node` by the chain of pointwise steps (its output Value kept)."""
    x, y = node.inputs[0], node.outputs[0]
    idx = g.nodes.index(node)
    g.remove_node(node)
    cur, dt = x, x.dtype
    for i, (op, c, attrs) in enumerate(steps):
        last = i == len(steps) - 1
        ins = [cur]
        if isinstance(c, tuple):
            ins += [g.const(torch.tensor(v, dtype=torch.float32), f"{node.name}.clip") for v in c]
        elif c is not None:
            ins.append(g.const(torch.tensor(c, dtype=torch.float32), f"{node.name}.{op.lower()}"))
        dt = dtypes.from_onnx(attrs["to"]) if op == "Cast" else dt
        out = y if last else g.new_value(f"{node.name}.{op.lower()}", dt, x.shape)
        g.add_node(op, ins, [out], attrs, name=g.unique_node_name(f"{node.name}.{op.lower()}"),
                   origin=list(node.origin or [node.name]), index=idx + i)
        cur = out


def lowerable(node) -> str | None:
    """Why a Q/DQ cannot be lowered (None when it can)."""
    sp = spec(node)
    if sp is None:
        return "not per-tensor with constant parameters"
    x = node.inputs[0]
    if node.op == "QuantizeLinear" and x.dtype not in ("float32",) + LOW:
        return "the quantized input is not float32, float16 or bfloat16"
    if node.op == "DequantizeLinear" and node.inputs[1].dtype not in ("float32",) + LOW:
        return "the scale is not float32, float16 or bfloat16"
    return None


def lower(g: Graph, node) -> bool:
    """Lower one Q or DQ node in place; False when it must stay."""
    if lowerable(node) is not None:
        return False
    s, zp, dt = spec(node)
    if node.op == "QuantizeLinear":
        _emit(g, node, q_steps(s, zp, dt, node.inputs[0].dtype))
    else:
        _emit(g, node, dq_steps(s, zp, dt, node.outputs[0].dtype))
    log.info("Lowering %s %s to pointwise (QDQLower)", node.op, node.name)
    return True


def _pure_pair(dq) -> bool:
    """A DQ reading a Q that nothing else reads (a fake-quant pair)."""
    p = dq.inputs[0].producer
    return p is not None and p.op == "QuantizeLinear" and all(u is dq for u in dq.inputs[0].users)


def quant_lower_pairs(g: Graph) -> Graph:
    """Round 1: fake-quant pairs and every Q become pointwise (skip DQs wait for the epilogues)."""
    for n in [n for n in g.nodes if n.op == "DequantizeLinear" and _pure_pair(n)]:
        lower(g, n)
    for n in [n for n in g.nodes if n.op == "QuantizeLinear"]:
        lower(g, n)
    return g


def _scalar(v):
    """The float value of a one-element constant Value, else None."""
    return float(v.const.reshape(-1)[0]) if v is not None and v.const is not None and v.const.numel() == 1 else None


def lowered_q(g: Graph, v):
    """([scale, zero point, type], chain nodes, output) when v's only user starts the pointwise chain
    q_steps emits for a per-tensor Q (each inner value used once, not a graph output), else None: the
    chain is read up to its final Cast, then compared with q_steps's template for its scale and type."""
    chain, cur = [], v
    while len(chain) < 6 and len(cur.users) == 1 and not g.is_output(cur):
        n = cur.users[0]
        if n.op not in ("Cast", "Div", "Round", "Add", "Clip") or n.inputs[0] is not cur:
            break
        chain.append(n)
        cur = n.outputs[0]
        if n.op == "Cast" and n.attrs.get("to") != TensorProto.FLOAT:
            break
    if not chain or chain[-1].op != "Cast":
        return None
    dt = dtypes.from_onnx(chain[-1].attrs["to"])
    div = next((n for n in chain if n.op == "Div"), None)
    add = next((n for n in chain if n.op == "Add"), None)
    s = _scalar(div.inputs[1]) if div is not None else None
    zp = _scalar(add.inputs[1]) if add is not None else 0.0
    if dt not in F8 + ("int8", "uint8") or not s or s <= 0 or zp is None or zp != int(zp):
        return None
    want = q_steps(s, int(zp), dt, v.dtype)
    if len(want) != len(chain):
        return None
    for (op, c, attrs), n in zip(want, chain):
        consts = [] if c is None else [float(x) for x in (c if isinstance(c, tuple) else (c,))]
        if n.op != op or any(n.attrs.get(k) != a for k, a in attrs.items()) or \
                [_scalar(x) for x in n.inputs[1:]] != consts:
            return None
    return [s, int(zp), dt], chain, cur


def quant_lower_rest(g: Graph) -> Graph:
    """Round 2: the remaining Q/DQ become pointwise."""
    for n in [n for n in g.nodes if n.op in ("QuantizeLinear", "DequantizeLinear")]:
        if n.inputs[0].const is None:
            lower(g, n)
    return g
