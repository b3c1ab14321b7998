"""A small interpreter over ir subgraphs: runs each node with its op's reference function.

Used by the If/Loop/Scan references (the oracle, the CPU path and, for now, the runtime kernel of a
control-flow layer). Values are torch tensors, python lists (sequences) or None (empty optionals).
"""
from __future__ import annotations

import torch

from . import registry


def _placed(sub, v, host: bool, device):
    """A body constant on the device that reads it (host slots keep the CPU copy); cached per body."""
    t = v.const
    if host or device is None or not isinstance(t, torch.Tensor) or t.device == torch.device(device):
        return t
    cache = sub.__dict__.setdefault("_placed_consts", {})
    hit = cache.get((id(v), str(device)))
    if hit is None or hit[0] is not t:
        hit = cache[(id(v), str(device))] = (t, t.to(device))
    return hit[1]


def run_graph(sub, inputs, captures, opset: int, device=None) -> list:
    """Run body `sub` on its formal inputs and captured outer values; returns its outputs."""
    env = {}
    for v, t in zip(sub.inputs, inputs):
        env[id(v)] = t
    for v, t in zip(sub.captures, captures):
        env[id(v)] = t
    for n in sub.nodes:
        op = registry.get(n.op, n.domain, n.name)
        ins = []
        for i, v in enumerate(n.inputs):
            if v is None:
                ins.append(None)
            elif id(v) in env:
                ins.append(env[id(v)])
            elif v.const is not None:
                ins.append(_placed(sub, v, i in op.host_inputs, device))
            else:
                raise RuntimeError(f"subgraph {sub.name}: node '{n.name}' reads '{v.name}', which has no value")
        outs = op.run(ins, n.attrs, opset, len(n.outputs), device)
        for v, t in zip(n.outputs, outs):
            env[id(v)] = t
    res = []
    for v in sub.outputs:
        if id(v) in env:
            res.append(env[id(v)])
        elif v.const is not None:
            res.append(_placed(sub, v, False, device))
        else:
            raise RuntimeError(f"subgraph {sub.name}: output '{v.name}' has no value")
    return res


def deterministic(node) -> bool:
    """True when every op in the node's bodies (any depth) is deterministic: only then may a
    control-flow node with constant inputs be evaluated at build time."""
    from ..ir.subgraph import subgraphs
    for _, sub in subgraphs(node):
        for n in sub.nodes:
            if not registry.has(n.op, n.domain) or not registry.get(n.op, n.domain).deterministic \
                    or not deterministic(n):
                return False
    return True
