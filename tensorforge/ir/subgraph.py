"""Subgraphs of control-flow nodes (If/Loop/Scan bodies): queries, constant hoisting, (de)serialization.

A subgraph is an `ir.Graph` held in a node attribute. It never references an outer Value directly:
every outer-scope value it reads is a *capture* (`sub.captures[i]`, a stand-in Value of the subgraph)
bound to the node's trailing input `node.inputs[n_formal(node) + i]`. All subgraphs of one node
have aligned capture lists (a branch that does not read a capture leaves its stand-in unused), so
outer passes see every dependency as a plain input and never move values across the boundary.
"""
from __future__ import annotations

from .graph import Graph, Node, Value


def subgraphs(node: Node) -> list:
    """[(attribute name, Graph)] of a node (empty for ordinary nodes)."""
    return [(k, a) for k, a in node.attrs.items() if isinstance(a, Graph)]


def n_formal(node: Node) -> int:
    """How many of the node's inputs are its ONNX inputs (the rest are captured outer values)."""
    subs = subgraphs(node)
    return len(node.inputs) - (len(subs[0][1].captures) if subs else 0)


def walk(g: Graph):
    """Yield g and every subgraph nested in it (depth first)."""
    yield g
    for n in g.nodes:
        for _, sub in subgraphs(n):
            yield from walk(sub)


def add_capture(g: Graph, node: Node, outer: Value) -> list:
    """Make `outer` a new trailing input of `node`; returns the new stand-in of each subgraph."""
    g_subs = subgraphs(node)
    stand_ins = []
    for _, sub in g_subs:
        v = sub.new_value(outer.name, outer.dtype, outer.shape)
        sub.captures.append(v)
        stand_ins.append(v)
    node.inputs.append(outer)
    outer.users.append(node)
    return stand_ins


def drop_unused_captures(g: Graph, node: Node) -> int:
    """Remove captures no subgraph of `node` reads (inputs of the node the outer graph keeps alive)."""
    subs = [s for _, s in subgraphs(node)]
    if not subs:
        return 0
    base, dropped = n_formal(node), 0
    for i in reversed(range(len(subs[0].captures))):
        if any(s.captures[i].users or s.is_output(s.captures[i]) for s in subs):
            continue
        g.set_input(node, base + i, None)
        del node.inputs[base + i]
        for s in subs:
            del s.captures[i]
        dropped += 1
    for s in subs:
        s.prune_values()
    return dropped


def hoist_constants(g: Graph, min_elements: int = 64) -> None:
    """Turn every subgraph constant of >= min_elements (any depth) into a capture, so that weights
    live in the outer graph (the engine's weight file) and the subgraphs hold only small data."""
    for n in list(g.nodes):
        for _, sub in subgraphs(n):
            hoist_constants(sub, min_elements)
        for _, sub in subgraphs(n):
            big = [v for v in list(sub.values.values()) if v.const is not None and v.producer is None
                   and v.const.numel() >= min_elements and not any(v is c for c in sub.captures)
                   and not any(v is i for i in sub.inputs)]
            for v in big:
                outer = g.const(v.const, f"{n.name}/{v.name}")
                stand_ins = add_capture(g, n, outer)
                mine = stand_ins[[s for _, s in subgraphs(n)].index(sub)]
                sub.replace_uses(v, mine)
                sub.prune_values()


def to_json(sub: Graph) -> dict:
    """A subgraph as JSON-able data (its constants inline: hoist big ones first)."""
    from .attrs import to_json as attr_json
    from .symbolic import to_str

    def val(v):
        return {"name": v.name, "dtype": v.dtype, "shape": None if v.shape is None else [to_str(d) for d in v.shape]}
    consts = {v.name: attr_json(v.const) for v in sub.values.values() if v.const is not None
              and v.producer is None and not any(v is c for c in sub.captures)}
    nodes = [{"op": n.op, "domain": n.domain, "name": n.name, "origin": list(n.origin),
              "inputs": [None if v is None else v.name for v in n.inputs], "outputs": [val(v) for v in n.outputs],
              "attrs": {k: attr_json(a) for k, a in n.attrs.items()}} for n in sub.nodes]
    return {"name": sub.name, "opset": sub.opset, "inputs": [val(v) for v in sub.inputs],
            "captures": [val(v) for v in sub.captures], "outputs": [v.name for v in sub.outputs],
            "consts": consts, "nodes": nodes}


def from_json(d: dict) -> Graph:
    """Inverse of to_json (shapes stay as serialized: the interpreter does not read them)."""
    from .attrs import from_json as attr_value
    g = Graph(d["name"], d["opset"])

    def val(x):
        return g.value(x["name"], x["dtype"], x["shape"])
    g.inputs = [val(x) for x in d["inputs"]]
    g.captures = [val(x) for x in d["captures"]]
    for name, t in d["consts"].items():
        g.value(name).const = attr_value(t)
    for n in d["nodes"]:
        ins = [None if x is None else g.values[x] for x in n["inputs"]]
        g.add_node(n["op"], ins, [val(x) for x in n["outputs"]], {k: attr_value(a) for k, a in n["attrs"].items()},
                   name=n["name"], domain=n["domain"], origin=n["origin"])
    g.outputs = [g.values[x] for x in d["outputs"]]
    return g
