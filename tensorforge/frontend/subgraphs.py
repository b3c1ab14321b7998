"""Graph attributes (If/Loop/Scan bodies) -> ir subgraphs, and inference into them.

Loading closes each body over its outer-scope names: a name a body reads but does not define
becomes a capture of that body (recursively through nested bodies), bound to a new trailing input
of the control-flow node (see ir.subgraph). Inference binds the captures to the outer values
(constants and symbolic contents included: they are loop invariant) and lets the op's
`infer_subgraphs` hook type the body inputs and infer the bodies.
"""
from __future__ import annotations

import onnx

from ..errors import TensorforgeError
from ..ir import Graph
from ..ir.subgraph import n_formal, subgraphs


def close_over(g: Graph, proto: onnx.NodeProto, attrs: dict, node_name: str, lookup) -> list:
    """Replace the graph attributes in `attrs` by ir subgraphs; returns the outer values to capture.

    lookup(name) -> the outer Value a name resolves to (raises TensorforgeError when undefined)."""
    order, outer = [], {}

    def capture(name):
        if name not in outer:
            outer[name] = lookup(name)
            order.append(name)
        return outer[name]

    subs = {}
    for a in proto.attribute:
        if a.type == onnx.AttributeProto.GRAPH:
            subs[a.name] = _convert(a.g, g.opset, capture, f"{node_name}.{a.name}")
        elif a.type == onnx.AttributeProto.GRAPHS:
            raise TensorforgeError(f"node '{node_name}' ({proto.op_type}): attribute '{a.name}' holds a "
                                   "list of graphs (not supported)")
    for k, (sub, caps) in subs.items():  # align every body's captures to the union, in first-use order
        sub.captures = [caps[name] if name in caps else sub.new_value(f"{name}__unused") for name in order]
        attrs[k] = sub
    return [outer[name] for name in order]


def _convert(gp: onnx.GraphProto, opset: int, capture, where: str):
    """(ir Graph, {outer name: capture stand-in}) of one body."""
    from .onnx_loader import _attr_value, _constant_value, tensor_to_torch
    sub = Graph(gp.name or where, opset)
    caps = {}

    def lookup(name):
        if name in sub.values:
            return sub.values[name]
        capture(name)  # resolves in the enclosing scope (raises when undefined there too)
        caps[name] = sub.value(name)
        return caps[name]

    for init in gp.initializer:
        sub.value(init.name).const = tensor_to_torch(init)
    sub.inputs = [sub.value(vi.name) for vi in gp.input]
    for i, n in enumerate(gp.node):
        name = n.name or f"{n.op_type}_{i}"
        attrs = {a.name: _attr_value(a) for a in n.attribute}
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx"):
            sub.value(n.output[0]).const = _constant_value(attrs, name)
            continue
        ins = [lookup(x) if x else None for x in n.input]
        nname = sub.unique_node_name(name)
        ins += close_over(sub, n, attrs, f"{where}/{nname}", lookup)
        outs = [sub.value(x) if x else sub.new_value(f"{name}_unused{j}") for j, x in enumerate(n.output)]
        sub.add_node(n.op_type, ins, outs, attrs, name=nname, domain=n.domain, origin=[name])
    sub.outputs = [lookup(vi.name) for vi in gp.output]
    return sub, caps


def outer_lookup(g: Graph, node_name: str, op: str):
    """lookup(name) for a body of a node of the top-level graph."""
    def lookup(name):
        v = g.values.get(name)
        if v is None or (v.const is None and v.producer is None and v not in g.inputs):
            raise TensorforgeError(f"node '{node_name}' ({op}): a subgraph reads '{name}', which nothing produces")
        return v
    return lookup


def bind_captures(node) -> None:
    """Give every body's capture stand-ins the type and known contents of the outer value."""
    outer = node.inputs[n_formal(node):]
    for _, sub in subgraphs(node):
        for c, v in zip(sub.captures, outer):
            c.dtype, c.shape, c.const, c.sym = v.dtype, v.shape, v.const, v.sym


def reset(sub: Graph) -> None:
    """Forget what an earlier inference of a body computed (bodies are re-inferred with new types)."""
    sub.metadata.pop("untyped", None)
    for n in sub.nodes:
        for v in n.outputs:
            v.dtype = v.shape = v.const = v.sym = None
        for _, s in subgraphs(n):
            reset(s)


def infer_bodies(node, op, infer_graph) -> None:
    """Bind captures, then let the op type its body inputs and infer the bodies (op.extra hook
    `infer_subgraphs(node, infer)`; `infer(sub)` re-infers a body from scratch)."""
    hook = op.extra.get("infer_subgraphs")
    if hook is None:
        raise TensorforgeError(f"node '{node.name}' ({node.op}): graph attributes are not supported for this op")
    bind_captures(node)

    def infer(sub):
        reset(sub)
        return infer_graph(sub)
    hook(node, infer)
