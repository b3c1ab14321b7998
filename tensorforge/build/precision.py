"""Precision assignment: decide each node's compute dtype from the BuilderConfig (graph level).

FP32 default: nothing changes (TF32 is a runtime math mode, see runtime.context)."""
from __future__ import annotations

from ..ir import Graph
from .config import BuilderConfig


def assign_precision(g: Graph, cfg: BuilderConfig) -> Graph:
    """Return the graph with reduced-precision regions and the casts at their borders."""
    return g
