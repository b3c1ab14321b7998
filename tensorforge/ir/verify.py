"""Graph invariants, checked after every pass in tests."""
from __future__ import annotations

from .graph import Graph
from .subgraph import n_formal, subgraphs


class GraphInvariantError(AssertionError):
    pass


def verify(g: Graph) -> None:
    """Check topological order, use lists, producers, unique names, and typed values; subgraphs
    (control-flow bodies) too: each reads outer values only through captures bound to node inputs."""
    defined = {id(v) for v in g.inputs} | {id(v) for v in g.captures}
    defined |= {id(v) for v in g.values.values() if v.producer is None and v.is_const}
    defined |= {id(v) for v in g.values.values() if v.producer is None and v.sym is not None}
    node_names = set()
    for n in g.nodes:
        if n.name in node_names:
            raise GraphInvariantError(f"duplicate node name {n.name}")
        node_names.add(n.name)
        for v in n.inputs:
            if v is None:
                continue
            if id(v) not in defined:
                raise GraphInvariantError(f"{n.name}: input {v.name} used before definition")
            if n not in v.users:
                raise GraphInvariantError(f"{n.name}: missing from users of {v.name}")
            if g.values.get(v.name) is not v:
                raise GraphInvariantError(f"{n.name}: input {v.name} not registered in graph.values")
        for v in n.outputs:
            if v.producer is not n:
                raise GraphInvariantError(f"{n.name}: wrong producer on {v.name}")
            if id(v) in defined:
                raise GraphInvariantError(f"{v.name} defined twice")
            if g.values.get(v.name) is not v:
                raise GraphInvariantError(f"{n.name}: output {v.name} not registered in graph.values")
            defined.add(id(v))
        _verify_subgraphs(n)
    live_nodes = {id(n) for n in g.nodes}
    for v in g.values.values():
        for u in v.users:
            if id(u) not in live_nodes:
                raise GraphInvariantError(f"{v.name} used by removed node {u.name}")
            if not any(x is v for x in u.inputs):
                raise GraphInvariantError(f"{v.name} lists {u.name} as user but is not its input")
    for v in g.outputs:
        if id(v) not in defined:
            raise GraphInvariantError(f"graph output {v.name} is never defined")
    for v in list(g.inputs) + [o for n in g.nodes for o in n.outputs]:
        if v.dtype is None or v.shape is None:
            raise GraphInvariantError(f"value {v.name} has no inferred dtype/shape")


def _verify_subgraphs(n) -> None:
    """Captures aligned with the node's trailing inputs (outer references resolve), bodies valid."""
    subs = subgraphs(n)
    for k, sub in subs:
        if len(sub.captures) != len(subs[0][1].captures) or len(sub.captures) > len(n.inputs):
            raise GraphInvariantError(f"{n.name}.{k}: {len(sub.captures)} captures do not match the node's "
                                      f"{len(n.inputs)} inputs / other bodies")
        outer = n.inputs[n_formal(n):]
        for c, v in zip(sub.captures, outer):
            if v is None:
                raise GraphInvariantError(f"{n.name}.{k}: capture {c.name} is bound to no outer value")
            if c.dtype is not None and v.dtype is not None and c.dtype != v.dtype:
                raise GraphInvariantError(f"{n.name}.{k}: capture {c.name} is {c.dtype}, outer {v.name} {v.dtype}")
        if sub.metadata.get("untyped"):  # a branch that cannot run with these input types (raises if taken)
            continue
        try:
            verify(sub)
        except GraphInvariantError as e:
            raise GraphInvariantError(f"in {n.name}.{k}: {e}") from None
