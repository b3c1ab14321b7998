"""Control-flow passes: fold an If whose condition is known at build time, optimize inside bodies.

fold_if algebra: If(c, then=T, else=E)(outer...) with c known -> the nodes of the taken branch,
inlined in place of the If (captures read the outer values they stand for).
optimize_subgraphs: every body (any depth) runs the optimizer pipeline on its own; nothing moves
across a body boundary (a body reads outer values only through its captures), and captures no
body reads any more are dropped, so their producers can die outside.
"""
from __future__ import annotations

import logging

import numpy as np

from ..ir import Graph
from ..ir.subgraph import drop_unused_captures, n_formal, subgraphs
from ..ops.control_flow import known_bool

log = logging.getLogger("tensorforge")


def _inline(g: Graph, node) -> None:
    """Replace `node` (an If with a known condition) by the nodes of its taken branch."""
    br = node.attrs["then_branch" if known_bool(node.inputs[0]) else "else_branch"]
    remap = {id(c): v for c, v in zip(br.captures, node.inputs[n_formal(node):])}

    def outer(v):
        if v is None:
            return None
        if id(v) not in remap:  # a body constant (or an input-free value): becomes an outer value
            remap[id(v)] = g.const(v.const, v.name) if v.const is not None else _adopt(g, v)
        return remap[id(v)]

    at = g.nodes.index(node)
    for k, n in enumerate(br.nodes):
        ins = [outer(v) for v in n.inputs]
        outs = [_adopt(g, v) for v in n.outputs]
        for v in outs:
            remap[id(v)] = v
        for v in n.outputs:
            v.users = []
        g.add_node(n.op, ins, outs, n.attrs, name=g.unique_node_name(n.name), domain=n.domain,
                   origin=n.origin, index=at + k)
    results = [outer(v) for v in br.outputs]
    at = g.nodes.index(node)
    g.remove_node(node)
    for old, new in zip(node.outputs, results):
        if g.is_output(old):  # a graph output keeps its name: old = Identity(new)
            g.add_node("Identity", [new], [old], name=g.unique_node_name(f"{node.name}_out"), origin=node.origin,
                       index=at)
            at += 1
        else:
            g.replace_uses(old, new)


def _adopt(g: Graph, v):
    """Register a body value in the outer graph (renamed when the name is taken)."""
    if g.values.get(v.name) is not v:
        v.name = g.unique_name(v.name)
        g.values[v.name] = v
    return v


def fold_if(g: Graph) -> Graph:
    """Inline every If whose condition is a build-time constant (repeat: inlined Ifs may now be known)."""
    folded = 0
    while True:
        todo = [n for n in g.nodes if n.op == "If" and n.domain in ("", "ai.onnx")
                and known_bool(n.inputs[0]) is not None]
        if not todo:
            break
        for n in todo:
            log.info("fold_if: %s takes its %s branch (condition known at build time)", n.name,
                     "then" if known_bool(n.inputs[0]) else "else")
            _inline(g, n)
            folded += 1
    if folded:
        g.prune_values()
    return g


def _forget_symbolic(sub: Graph) -> None:
    """Symbolic shape values become run-time shape tensors only in the top-level graph: in a body
    the interpreter computes them, so keep only fully known contents (they fold to constants)."""
    for v in sub.values.values():
        if v.sym is not None and not all(isinstance(x, (int, np.integer)) for x in v.sym.reshape(-1).tolist()):
            v.sym = None


INLINE_MAX = 64  # lower.hoist_constants moves body constants of >= 64 elements back out as captures


def inline_constant_captures(node) -> int:
    """Captures whose outer value is a small constant become constants of the bodies that read them
    (the capture itself is dropped afterwards by drop_unused_captures). A body then folds with the
    value known, and a host-read input (Pad's pads, Slice's starts, Split's sizes) gets the host
    copy the interpreter keeps for constants instead of a device tensor: Silero VAD's op18 export
    padded with a captured `pads`, whose host read inside the taken branch made if_graphs' capture
    fail, so the branch ran eagerly (3.4 ms against 0.63 ms for the branch that captured)."""
    subs = [s for _, s in subgraphs(node)]
    base, done = n_formal(node), 0
    for i, outer in enumerate(node.inputs[base:] if subs else []):
        if outer is None or outer.const is None or outer.const.numel() >= INLINE_MAX:
            continue
        for sub in subs:
            stand_in = sub.captures[i]
            if stand_in.users or sub.is_output(stand_in):
                sub.replace_uses(stand_in, sub.const(outer.const, f"{stand_in.name}_inlined"))
                done += 1
    return done


def optimize_subgraphs(g: Graph, pipeline=None) -> Graph:
    """Run the optimizer pipeline inside every body (innermost first), then drop dead captures."""
    from . import PIPELINE, run_pipeline
    seq = [p for p in (PIPELINE if pipeline is None else pipeline) if p not in (optimize_subgraphs, cleanup_subgraphs)]
    for n in g.nodes:
        subs = subgraphs(n)
        if subs:
            inline_constant_captures(n)
        for k, sub in subs:
            if sub.metadata.get("untyped"):  # cannot run with these input types: left as loaded
                continue
            optimize_subgraphs(sub, pipeline)
            _forget_symbolic(sub)
            n.attrs[k] = run_pipeline(sub, seq)
        if subs:
            drop_unused_captures(g, n)
    return g


def cleanup_subgraphs(g: Graph) -> Graph:
    """optimize_subgraphs with the cleanup pipeline only (BuilderConfig(fusion=False))."""
    from . import CLEANUP
    return optimize_subgraphs(g, CLEANUP)
