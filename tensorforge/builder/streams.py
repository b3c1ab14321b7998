"""Auxiliary streams: independent branches of the layer DAG (parallel convs, detector heads, the
Q/K/V projections) get their own stream so they can overlap; `LayerSpec.stream` 0 is the main one.

Chains: walking layers in plan order, a layer continues the chain of a producer whose chain it is
the first to continue (the main-most one at joins); otherwise it starts a new chain, whose parent is
the chain of its first producer. A chain with no heavy layer (conv, GEMM, attention) is not worth
the events: it stays on its parent's stream. Heavy chains take aux streams 1..k, reusing a stream
once its previous chain happens before the new chain starts; when none is free, the least loaded
aux stream. Any assignment is correct (the runtime waits on events at every
cross-stream dependency); this one decides what may overlap.
"""
from __future__ import annotations

import logging

from ..runtime.streams import layer_preds, reachability

log = logging.getLogger("tensorforge")

HEURISTIC_MAX_AUX = 2  # max_aux_streams=None: a few streams cover typical fan-outs without many events
HEAVY = {"Conv", "ConvTranspose", "MatMul", "Gemm", "Einsum", "Attention", "fused.ConvAct",
         "fused.GemmAct", "fused.MatMulAct", "fused.Attention", "LSTM", "GRU", "RNN"}


def chains(layers, preds) -> tuple[list, list]:
    """(chain id per layer, parent chain per chain)."""
    chain_of, parent, continued = [], [], set()
    for i in range(len(layers)):
        ps = sorted(preds[i], key=lambda p: (chain_of[p], p))
        free = [p for p in ps if p not in continued]
        if free:
            continued.add(free[0])
            chain_of.append(chain_of[free[0]])
            continue
        if parent:  # a new chain (the first layer opens chain 0, the main one)
            parent.append(chain_of[ps[0]] if ps else 0)
        else:
            parent.append(0)
        chain_of.append(len(parent) - 1)
    return chain_of, parent


def map_streams(layers, chain_of, parent, max_aux: int, reach) -> list:
    """Stream per chain: heavy chains on aux streams 1..max_aux, others inherit their parent's.

    A heavy chain takes an aux stream whose previous chain happens before the chain's first layer
    (so nothing that could overlap is serialized); when there is none, the least loaded aux stream."""
    members = [[] for _ in parent]
    for i, c in enumerate(chain_of):
        members[c].append(i)
    stream = [0] * len(parent)
    tail, load = {}, {s: 0 for s in range(1, max_aux + 1)}  # aux stream -> its last layer / heavy layers
    for c in range(1, len(parent)):
        idx = members[c]
        heavy = sum(1 for i in idx if layers[i].type in HEAVY)
        if not heavy:
            stream[c] = stream[parent[c]]
        else:
            free = [s for s in load if s not in tail or reach[idx[0], tail[s]]]
            stream[c] = free[0] if free else min(load, key=lambda s: (load[s], s))
            load[stream[c]] += heavy
        if stream[c]:
            tail[stream[c]] = max(tail.get(stream[c], -1), idx[-1])
    return stream


def assign_streams(plan, max_aux_streams=None):
    """Set LayerSpec.stream and plan.num_aux_streams (None: heuristic cap, 0: everything on main)."""
    k = HEURISTIC_MAX_AUX if max_aux_streams is None else int(max_aux_streams)
    for lay in plan.layers:
        lay.stream = 0
    plan.num_aux_streams = 0
    if k <= 0 or len(plan.layers) < 2:
        return plan
    preds = layer_preds(plan.layers)
    chain_of, parent = chains(plan.layers, preds)
    stream = map_streams(plan.layers, chain_of, parent, k, reachability(preds))
    used = sorted({stream[c] for c in chain_of} - {0})
    renum = {s: i + 1 for i, s in enumerate(used)}
    for lay, c in zip(plan.layers, chain_of):
        lay.stream = renum.get(stream[c], 0)
    plan.num_aux_streams = len(used)
    if used:
        log.info("Auxiliary streams: %d (%d of %d layers off the main stream)", len(used),
                 sum(1 for lay in plan.layers if lay.stream), len(plan.layers))
    return plan
