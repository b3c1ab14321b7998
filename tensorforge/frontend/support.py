"""Which nodes of a model no rule supports: every one at once, before any inference or build."""
from __future__ import annotations

import onnx

from ..errors import UnsupportedOpError
from ..ops import registry

ALWAYS = {("", "Constant")}  # the loader turns these into constants itself


def _qual(domain: str, op: str) -> str:
    return f"{domain}::{op}" if domain not in ("", "ai.onnx") else op


def unsupported_nodes(proto: onnx.ModelProto, bodies: bool = False) -> dict[str, list[str]]:
    """{op (domain-qualified): [node names]} of the unsupported nodes of the main graph, or with
    bodies=True of the control-flow bodies (If/Loop/Scan) only, at any depth (an unnamed body node is
    parent/attribute/Op_i). A body's nodes fail a build only if it runs: an If folded on a known
    condition drops its dead branch."""
    out: dict[str, list[str]] = {}

    def walk(graph, prefix, depth):
        for i, n in enumerate(graph.node):
            name = n.name or prefix + f"{n.op_type}_{i}"
            dom = "" if n.domain in ("", "ai.onnx") else n.domain
            if (depth > 0) == bodies and (dom, n.op_type) not in ALWAYS and not registry.has(n.op_type, dom):
                out.setdefault(_qual(dom, n.op_type), []).append(name)
            if not bodies:
                continue
            for a in n.attribute:
                for sub in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
                    walk(sub, f"{name}/{a.name}/", depth + 1)

    walk(proto.graph, "", 0)
    return out


def unsupported_message(found: dict[str, list[str]]) -> str:
    """One line naming every unsupported op and all of its nodes."""
    def nodes(names):
        quoted = ", ".join(f"'{x}'" for x in names)
        return f"node {quoted}" if len(names) == 1 else f"{len(names)} nodes: {quoted}"
    parts = [f"'{op}' ({nodes(names)})" for op, names in found.items()]
    head = "unsupported op " if len(parts) == 1 else "unsupported ops: "
    return head + ", ".join(parts) + "; `tensorforge ops` prints the supported list"


def check_supported(proto: onnx.ModelProto) -> None:
    """Raise one UnsupportedOpError naming all unsupported nodes (none: return)."""
    found = unsupported_nodes(proto)
    if found:
        raise UnsupportedOpError(unsupported_message(found))
