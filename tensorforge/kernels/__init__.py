"""Tactic sources. A tactic is data {source, name, params}; `make_kernel` turns a layer into a
callable `fn(inputs) -> outputs`. Sources: aten (torch ops; the only one on CPU) and triton
(imported lazily, never on CPU machines)."""
from __future__ import annotations

import hashlib
import json

from ..errors import EngineFormatError

_SOURCES = {}
_CANDIDATES = {}


def register_source(name: str, factory, candidates=None) -> None:
    """Register a tactic source.

    factory(layer, opset, device) -> fn(inputs) -> list[outputs]
    candidates(layer, device) -> list of tactic dicts {source, name, params} valid for the layer
    """
    _SOURCES[name] = factory
    if candidates is not None:
        _CANDIDATES[name] = candidates


def candidates(layer, device) -> list[dict]:
    """All tactics any available source offers for a layer (aten's reference is always last)."""
    from . import aten  # noqa: F401
    if getattr(device, "type", str(device)) == "cuda":
        try:
            from . import triton  # noqa: F401  (lazy: needs CUDA + triton)
        except ImportError:
            pass
    out = []
    for src, fn in _CANDIDATES.items():
        out += [t for t in fn(layer, device) if t is not None]
    ref = {"source": "aten", "name": "reference", "params": {}}
    return [t for t in out if t != ref] + [ref]


def make_kernel(layer, opset: int, device):
    """Build the callable for one LayerSpec from its tactic."""
    src = layer.tactic.get("source", "aten")
    if src not in _SOURCES:
        if src == "aten":
            from . import aten  # noqa: F401
        elif src == "triton":
            from . import triton  # noqa: F401  (lazy: needs CUDA + triton)
    if src not in _SOURCES:
        raise EngineFormatError(f"layer '{layer.name}': unknown tactic source '{src}'")
    return _SOURCES[src](layer, opset, device)


def tactic_key(tactic: dict) -> str:
    """Stable key of a tactic: source/name plus canonical params."""
    params = json.dumps(tactic.get("params", {}), sort_keys=True, separators=(",", ":"))
    return f"{tactic.get('source')}:{tactic.get('name')}:{params}"


def tactic_hash(tactic: dict) -> str:
    """16-hex-digit hash of the tactic key (TensorRT's TacticValue)."""
    return "0x" + hashlib.sha1(tactic_key(tactic).encode()).hexdigest()[:16]
