"""The Q/DQ templates: QuantizeLinear / DequantizeLinear as the float32 pointwise operations their references
compute, Q(x) = Cast(Clip(Round(x / s) + z, lo, hi)) (float8: no Round, no zero point), DQ(q) = (Cast(q) - z) * s,
with an FP16 / BF16 input cast to float32 first and a DQ result cast back. One place for passes.quant.lower (which
emits them as graph nodes), passes.quant.skip_norm and the kernels that build a Q into an expression."""
from __future__ import annotations

import torch
from onnx import TensorProto

from ... import dtypes

F8 = ("float8e4m3fn", "float8e4m3fnuz", "float8e5m2", "float8e5m2fnuz")
F8_MAX = {"float8e4m3fn": 448.0, "float8e4m3fnuz": 240.0, "float8e5m2": 57344.0, "float8e5m2fnuz": 57344.0}


LOW = ("float16", "bfloat16")
UP = [("Cast", None, {"to": TensorProto.FLOAT})]


def q_steps(s, zp, dt, src="float32"):
    """The quantize template: [(op, constant operand or None, attrs)]."""
    onnx_to = dtypes.to_onnx(dt)
    up = UP if src in LOW else []
    if dt in F8:
        m = F8_MAX[dt]
        return up + [("Div", s, {}), ("Clip", (-m, m), {}), ("Cast", None, {"to": onnx_to})]
    info = torch.iinfo(dtypes.to_torch(dt))
    steps = up + [("Div", s, {}), ("Round", None, {})]
    if zp:
        steps.append(("Add", float(zp), {}))
    return steps + [("Clip", (float(info.min), float(info.max)), {}), ("Cast", None, {"to": onnx_to})]


def dq_steps(s, zp, dt, out="float32"):
    steps = list(UP)
    if zp and dt not in F8:
        steps.append(("Sub", float(zp), {}))
    down = [("Cast", None, {"to": dtypes.to_onnx(out)})] if out in LOW else []
    return steps + [("Mul", s, {})] + down


def steps_expr(b, x: int, steps) -> int:
    """The Q/DQ template `steps` (q_steps / dq_steps) emitted into ExprBuilder b from node x: the same
    float32 operations a lowered Q/DQ computes in a pointwise kernel; returns the last node."""
    for op, c, attrs in steps:
        if isinstance(c, tuple):  # Clip's bounds: attributes in an expression
            x = b.op(op, [x], {"min": float(c[0]), "max": float(c[1])})
        elif c is not None:
            x = b.op(op, [x, b.const(float(c), "float32")], attrs)
        else:
            x = b.op(op, [x], attrs)
    return x


def matches_steps(expr: dict, k: int, steps):
    """The node a chain of expression nodes ending at node k starts from when the chain is exactly the Q/DQ
    template `steps` (as steps_expr emits it), else None."""
    nodes = expr["nodes"]
    for op, c, attrs in reversed(steps):
        n = nodes[k]
        args = n.get("args", [])
        if n["op"] != op or any(n.get("attrs", {}).get(a) != v for a, v in attrs.items()) or not args:
            return None
        if isinstance(c, tuple):
            if (n["attrs"].get("min"), n["attrs"].get("max")) != (float(c[0]), float(c[1])):
                return None
        elif c is not None:
            if len(args) != 2 or nodes[args[1]]["op"] != "const" or nodes[args[1]]["v"] != float(c):
                return None
        k = args[0]
    return k
