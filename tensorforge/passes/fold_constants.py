"""Constant folding: nodes whose outputs inference already evaluated become constants.

Algebra: f(c1, ..., cn) -> c  when every input is constant (incl. shape arithmetic: Shape(x) of a
statically known x, and symbolic shape values such as [N, 128, 12, 64] computed from Shape(x)).
"""
from __future__ import annotations

import logging

from ..ir import Graph

log = logging.getLogger("tensorforge")


def fold_constants(g: Graph) -> Graph:
    """Drop nodes whose every output has a known constant or symbolic value."""
    folded = 0
    for node in list(g.nodes):
        if node.outputs and all(v.const is not None or (v.sym is not None and v.dtype in ("int64", "int32"))
                                for v in node.outputs):
            g.remove_node(node)
            folded += 1
    if folded:
        log.debug("fold_constants: folded %d nodes", folded)
    return g
