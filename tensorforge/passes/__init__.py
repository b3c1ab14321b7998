"""Graph passes: pure Graph -> Graph functions run in the order of PIPELINE."""
from __future__ import annotations

import logging

from ..ir import Graph, verify
from .dce import dce
from .fold_constants import fold_constants

log = logging.getLogger("tensorforge")

# The optimizer pipeline, in order. Each entry is a pure Graph -> Graph function.
PIPELINE = [fold_constants, dce]


def run_pipeline(g: Graph, pipeline=None, check: bool = False) -> Graph:
    """Run passes in order; with check=True verify the graph after each pass."""
    for p in (PIPELINE if pipeline is None else pipeline):
        g = p(g)
        if check:
            verify(g)
    return g


__all__ = ["PIPELINE", "run_pipeline", "fold_constants", "dce"]
