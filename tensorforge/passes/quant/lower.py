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
from .params import F8, spec

log = logging.getLogger("tensorforge")
F8_MAX = {"float8e4m3fn": 448.0, "float8e4m3fnuz": 240.0, "float8e5m2": 57344.0, "float8e5m2fnuz": 57344.0}


LOW = ("float16", "bfloat16")
_UP = [("Cast", None, {"to": TensorProto.FLOAT})]


def _steps_q(s, zp, dt, src="float32"):
    """The quantize template: [(op, constant operand or None, attrs)]."""
    onnx_to = dtypes.to_onnx(dt)
    up = _UP if src in LOW else []
    if dt in F8:
        m = F8_MAX[dt]
        return up + [("Div", s, {}), ("Clip", (-m, m), {}), ("Cast", None, {"to": onnx_to})]
    info = torch.iinfo(dtypes.to_torch(dt))
    steps = up + [("Div", s, {}), ("Round", None, {})]
    if zp:
        steps.append(("Add", float(zp), {}))
    return steps + [("Clip", (float(info.min), float(info.max)), {}), ("Cast", None, {"to": onnx_to})]


def _steps_dq(s, zp, dt, out="float32"):
    steps = list(_UP)
    if zp and dt not in F8:
        steps.append(("Sub", float(zp), {}))
    down = [("Cast", None, {"to": dtypes.to_onnx(out)})] if out in LOW else []
    return steps + [("Mul", s, {})] + down


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
        _emit(g, node, _steps_q(s, zp, dt, node.inputs[0].dtype))
    else:
        _emit(g, node, _steps_dq(s, zp, dt, node.outputs[0].dtype))
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


def lowered_q(g: Graph, v):
    """([scale, zero point, type], chain nodes, output) when v's only user starts the pointwise chain
    _steps_q emits for a per-tensor Q (each inner value used once, not a graph output), else None."""
    chain, cur = [], v

    def step(op, attrs=None):
        nonlocal cur
        users = cur.users
        if len(users) != 1 or g.is_output(cur) or users[0].op != op or users[0].inputs[0] is not cur:
            return None
        n = users[0]
        if attrs and any(n.attrs.get(k) != val for k, val in attrs.items()):
            return None
        chain.append(n)
        cur = n.outputs[0]
        return n

    if v.dtype in LOW and step("Cast", {"to": TensorProto.FLOAT}) is None:
        return None
    div = step("Div")
    if div is None or div.inputs[1].const is None or div.inputs[1].const.numel() != 1:
        return None
    s, zp = float(div.inputs[1].const.reshape(-1)[0]), 0
    if s <= 0:
        return None
    if step("Round") is not None:  # an integer Q: Round [Add zp] Clip Cast
        if cur.users and cur.users[0].op == "Add":
            add = step("Add")
            if add is None or add.inputs[1].const is None or add.inputs[1].const.numel() != 1:
                return None
            zp = int(add.inputs[1].const.reshape(-1)[0])
    clip = step("Clip")
    cast = step("Cast")
    if clip is None or cast is None or len(clip.inputs) < 3 or \
            any(c is None or c.const is None for c in clip.inputs[1:3]):
        return None
    dt = dtypes.from_onnx(cast.attrs["to"])
    lo, hi = (float(c.const.reshape(-1)[0]) for c in clip.inputs[1:3])
    want = (-F8_MAX[dt], F8_MAX[dt]) if dt in F8_MAX else \
        tuple(float(x) for x in (torch.iinfo(dtypes.to_torch(dt)).min, torch.iinfo(dtypes.to_torch(dt)).max)) \
        if dt in ("int8", "uint8") else None
    if want is None or (lo, hi) != want or (dt in F8_MAX) == any(n.op == "Round" for n in chain):
        return None
    return [s, zp, dt], chain, cur


def quant_lower_rest(g: Graph) -> Graph:
    """Round 2: the remaining Q/DQ become pointwise."""
    for n in [n for n in g.nodes if n.op in ("QuantizeLinear", "DequantizeLinear")]:
        if n.inputs[0].const is None:
            lower(g, n)
    return g
