"""Helpers of precision assignment: saturating conversion of constants, retyping expression
constants, and the output tail that stays FP32."""
from __future__ import annotations

import copy

import torch

from .. import dtypes
from ..ir.tape_ops import saturate_cast


def saturate(t: torch.Tensor, dt: str) -> torch.Tensor:
    """t converted to dt with finite values clamped into its range (no new infinities)."""
    return saturate_cast(t, dtypes.to_torch(dt))  # one pass, recorded for refit (ir.tape_ops)


def retype_consts(expr: dict, dt: str) -> dict:
    """An expression computing in dt: float32 literals and casts to float32 become dt."""
    e = copy.deepcopy(expr)
    for n in e["nodes"]:
        if n["op"] == "const" and n.get("dtype") == "float32":
            n["dtype"] = dt
        elif n["op"] == "Cast" and n.get("attrs", {}).get("to") == dtypes.to_onnx("float32"):
            n["attrs"] = dict(n["attrs"], to=dtypes.to_onnx(dt))
    return e


def tail_nodes(g, heavy) -> set:
    """ids of nodes from which no `heavy` node is reachable (walked backwards from the outputs)."""
    feeds_heavy = set()
    for node in reversed(g.nodes):
        if node.op in heavy or any(id(u) in feeds_heavy for v in node.outputs for u in v.users):
            feeds_heavy.add(id(node))
    return {id(n) for n in g.nodes if id(n) not in feeds_heavy}
