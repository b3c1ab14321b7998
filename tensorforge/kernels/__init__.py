"""Tactic sources. A tactic is data {source, name, params}; `make_kernel` turns a layer into a
callable `fn(inputs) -> outputs` (or `fn(inputs, outs)` for tactics that write in place). Sources:
aten (torch ops; the only one on CPU) and triton (imported lazily, never on CPU machines). Every
tactic family registers in one registry (kernels.registry, decorator `tactic_family`)."""
from __future__ import annotations

import hashlib
import json

from .layer_shapes import LayerShapes
from .registry import (Family, candidates, families, family_of, level_of, library_of, make_kernel, reference,
                       tactic_family, writes_in_place)

__all__ = ["Family", "LayerShapes", "candidates", "families", "family_of", "level_of", "library_of",
           "make_kernel", "reference", "tactic_family", "tactic_hash", "tactic_key", "writes_in_place"]


def tactic_key(tactic: dict) -> str:
    """Stable key of a tactic: source/name plus canonical params."""
    params = json.dumps(tactic.get("params", {}), sort_keys=True, separators=(",", ":"))
    return f"{tactic.get('source')}:{tactic.get('name')}:{params}"


def tactic_hash(tactic: dict) -> str:
    """16-hex-digit hash of the tactic key (TensorRT's TacticValue)."""
    return "0x" + hashlib.sha1(tactic_key(tactic).encode()).hexdigest()[:16]
