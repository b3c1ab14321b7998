"""Tactic selection: enumerate candidate kernels per layer, time them, keep the fastest.

Foundation: take the first candidate each source offers (no timing yet); aten's reference is
always available as the last candidate."""
from __future__ import annotations

from .. import kernels
from ..runtime.plan import EnginePlan
from .config import BuilderConfig


def select_tactics(plan: EnginePlan, weights: dict, cfg: BuilderConfig, device) -> EnginePlan:
    """Fill layer.tactic for every layer; may rewrite weights (layouts/dtypes) in place."""
    for lay in plan.layers:
        if lay.mode != "kernel":
            continue
        lay.tactic = kernels.candidates(lay, device)[0]
    return plan
