"""Tactic selection: enumerate candidate kernels per layer, time them, keep the fastest.

Foundation: every layer gets the aten reference tactic (no timing)."""
from __future__ import annotations

from ..runtime.plan import EnginePlan
from .config import BuilderConfig


def select_tactics(plan: EnginePlan, weights: dict, cfg: BuilderConfig, device) -> EnginePlan:
    """Fill layer.tactic for every layer; may rewrite weights (layouts/dtypes) in place."""
    return plan
