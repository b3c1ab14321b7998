"""Which nodes of a model no rule supports: every one at once, before any inference or build."""
from __future__ import annotations

import onnx

from ..errors import UnsupportedOpError
from ..ops import registry

ALWAYS = {("", "Constant")}  # the loader turns these into constants itself


def _qual(domain: str, op: str) -> str:
    return f"{domain}::{op}" if domain not in ("", "ai.onnx") else op


def unsupported_nodes(proto: onnx.ModelProto, inside_unsupported: bool = True) -> dict[str, list[str]]:
    """{op (domain-qualified): [node names]} of unsupported nodes, in subgraph bodies too (an
    unnamed body node is parent/attribute/Op_i). inside_unsupported=False skips the bodies of
    unsupported nodes (they matter only once their parent is supported)."""
    out: dict[str, list[str]] = {}

    def walk(graph, prefix):
        for i, n in enumerate(graph.node):
            name = n.name or prefix + f"{n.op_type}_{i}"
            dom = "" if n.domain in ("", "ai.onnx") else n.domain
            bad = (dom, n.op_type) not in ALWAYS and not registry.has(n.op_type, dom)
            if bad:
                out.setdefault(_qual(dom, n.op_type), []).append(name)
            if bad and not inside_unsupported:
                continue
            for a in n.attribute:
                for sub in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
                    walk(sub, f"{name}/{a.name}/")

    walk(proto.graph, "")
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
    found = unsupported_nodes(proto, inside_unsupported=False)
    if found:
        raise UnsupportedOpError(unsupported_message(found))
