"""Which tuning configs the GPU tests run: a representative subset by default, every config with
TF_GPU_FULL_SWEEP=1. Each config is a Triton compile (seconds each), so sweeping whole tuning
spaces made the suite outgrow one device call; tuning (bench/, opt levels 3-5) still sees them all.

The subset of a list in tuning order: the first config of each level (the level-0 pick and the
first extended one), the smallest and the largest tile, and the first config of each given kind
(e.g. split-K), in their original order."""
from __future__ import annotations

import math
import os

FULL = os.environ.get("TF_GPU_FULL_SWEEP") == "1"


def _field(t, key, default=None):
    """A tactic's field, whether tactics are dicts or objects."""
    return t.get(key, default) if isinstance(t, dict) else getattr(t, key, default)


def _params(t) -> dict:
    p = _field(t, "params")
    return t if p is None else p


def tile(cfg) -> int:
    """Tile size of a params dict (product of its BLOCK_* and ROWS values) or of a tactic dict."""
    params = _params(cfg)
    return math.prod(int(v) for k, v in params.items() if k.startswith("BLOCK") or k == "ROWS")


def _size(cfg):
    """Tile size, then warps (configs that differ only in num_warps compile apart)."""
    return tile(cfg), int(_params(cfg).get("num_warps", 0))


def pick(cfgs, size=_size, level=None, kinds=()) -> list:
    """The representative subset of `cfgs` (all of them with TF_GPU_FULL_SWEEP=1); `level(cfg)`
    groups configs by level, `kinds` are predicates whose first match is kept too."""
    cfgs = list(cfgs)
    if FULL or len(cfgs) <= 2:
        return cfgs
    lv = [level(c) if level else 3 for c in cfgs]
    chosen = {lv.index(v) for v in set(lv)}
    sizes = [size(c) for c in cfgs]
    chosen |= {sizes.index(min(sizes)), sizes.index(max(sizes))}
    for kind in kinds:
        first = next((i for i, c in enumerate(cfgs) if kind(c)), None)
        if first is not None:
            chosen.add(first)
    return [c for i, c in enumerate(cfgs) if i in chosen]


def levels(level3, level4=(), size=None) -> list:
    """pick() over a family's LEVEL3 + LEVEL4 config tuples; size defaults to BLOCK_M x BLOCK_N."""
    return pick(list(level3) + list(level4), size or (lambda c: c[0] * c[1]),
                lambda c: 3 if c in level3 else 4)


def split_k(t) -> bool:
    """A two-kernel split-K GEMM tactic or params (partials + reduce)."""
    p = _params(t)
    return "SPLIT_K" in p and not p.get("SERIAL")


def serial_k(t) -> bool:
    """A one-kernel (serial) split-K GEMM tactic or params."""
    return bool(_params(t).get("SERIAL"))


def tactics(cands) -> list:
    """pick() over tactic (or params) dicts of one family (level-3 ones carry no "level"), keeping a
    split-K and a serial split-K one where offered."""
    return pick(cands, _size, lambda t: _field(t, "level", 3), (split_k, serial_k))


def cut_candidates(candidates):
    """A kernels.candidates that offers, of each Triton tactic, only tactics()'s subset."""
    def cut(*args, **kwargs):
        out = candidates(*args, **kwargs)
        names = {_field(t, "name") for t in out if _field(t, "source") == "triton"}
        keep = {id(t) for n in names
                for t in tactics([t for t in out if _field(t, "source") == "triton" and _field(t, "name") == n])}
        return [t for t in out if _field(t, "source") != "triton" or id(t) in keep]
    return cut


def ident(cfg) -> str:
    """A readable test id of a config tuple: 128x64x4x3."""
    return "x".join(str(v) for v in cfg)
