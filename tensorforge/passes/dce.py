"""Dead-code elimination: remove nodes none of whose outputs reach a graph output."""
from __future__ import annotations

from ..ir import Graph


def dce(g: Graph) -> Graph:
    """Remove unused nodes (walking backwards so chains die in one pass) and stale values."""
    outs = {id(v) for v in g.outputs}
    for node in reversed(list(g.nodes)):
        if not any(v.users or id(v) in outs for v in node.outputs):
            g.remove_node(node)
    g.prune_values()
    return g
