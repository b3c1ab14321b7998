"""`tensorforge debug precision` (Polygraphy's `debug precision` role): the smallest set of layers that
must stay in a higher precision for the engine's outputs to meet a tolerance against a reference.

The search runs over the reduced-precision layers in topological order. With a set R known to be
needed (empty at first), it bisects for the shortest prefix P of the remaining layers such that
R + P passes; the last layer of P is needed, so it joins R, and the search repeats over the layers
before it until R alone passes. Each round costs log2(n) builds; the result is minimal in the sense
that every layer in it was needed given the earlier ones (exact for one sensitive layer)."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import TensorforgeError

log = logging.getLogger("tensorforge")
LOWER = {"fp32": ("float16", "bfloat16", "int8", "float8e4m3fn"), "fp16": ("int8", "float8e4m3fn")}


def minimal_set(cands: list, passes) -> list:
    """The layers (a sublist of cands, same order) to keep; passes(subset) says whether keeping it works."""
    if passes([]):
        return []
    if not passes(list(cands)):
        raise TensorforgeError(f"the outputs miss the tolerance even with all {len(cands)} candidate layers "
                               "kept in higher precision")
    required, pool = [], list(cands)
    while True:
        lo, hi = 1, len(pool)  # passes(required + pool[:hi]) holds; required alone does not
        while lo < hi:
            mid = (lo + hi) // 2
            if passes(required + pool[:mid]):
                hi = mid
            else:
                lo = mid + 1
        required.append(pool[hi - 1])
        pool = pool[:hi - 1]
        if passes(required):
            order = {c: i for i, c in enumerate(cands)}
            return sorted(required, key=order.get)


def meets(got: dict, ref: dict, atol: float, rtol: float) -> tuple[bool, float]:
    """(every output within tolerance, worst abs error); an element fails when abs > atol AND rel > rtol."""
    worst, ok = 0.0, True
    for name, r in ref.items():
        g = got[name]
        g = (g.detach().cpu().float().numpy() if g.is_floating_point() else g.cpu().numpy()) \
            if hasattr(g, "detach") else np.asarray(g)
        if g.shape != r.shape:
            return False, float("inf")
        g64, r64 = g.astype(np.float64), r.astype(np.float64)
        absd = np.abs(g64 - r64)
        bad = (absd > atol) & (absd > rtol * np.abs(r64))
        bad |= (np.isnan(g64) != np.isnan(r64)) | (np.isinf(g64) & ~np.isinf(r64))
        ok &= not bad.any()
        same = np.isfinite(absd)  # inf - inf and NaN positions are judged above, not measured
        worst = max(worst, float(absd[same].max()) if same.any() else 0.0)
        if (np.isfinite(r64) & ~np.isfinite(g64)).any():
            worst = float("inf")
    return ok, worst


def spec_name(layer) -> str:
    """The name a --layerPrecisions entry uses for a layer: its first ONNX node (stable across builds)."""
    return layer.origin[0] if layer.origin else layer.name


@dataclass
class PrecisionSearch:
    """Builds `model` with `config` plus per-layer constraints and checks the outputs on `feed`."""

    model: object
    config: object
    feed: dict
    ref: dict
    atol: float
    rtol: float
    keep: str = "fp32"
    trials: list = field(default_factory=list)  # (number kept, passed, worst abs error)
    _memo: dict = field(default_factory=dict)
    _base: object = None

    def build(self, kept: list):
        """An engine with the `kept` layers (spec names) constrained to the keep precision."""
        from ..builder import Builder
        if not kept and self._base is not None:
            return self._base
        cfg = replace(self.config, layer_precisions={n: self.keep for n in kept},
                      precision_constraints="obey" if kept else self.config.precision_constraints)
        engine = Builder(cfg).build(self.model)
        if not kept:
            self._base = engine
        return engine

    def passes(self, kept: list) -> bool:
        """Build, run and compare (memoized by the set kept)."""
        key = frozenset(kept)
        if key not in self._memo:
            got = self.build(kept).create_execution_context().infer(self.feed)
            ok, worst = meets(got, self.ref, self.atol, self.rtol)
            self.trials.append((len(kept), ok, worst))
            log.info("debug precision: %d layer(s) in %s -> %s (max abs error %.4g)", len(kept), self.keep,
                     "PASSED" if ok else "FAILED", worst)
            self._memo[key] = ok
        return self._memo[key]

    def candidates(self, engine) -> list:
        """Layers of an unconstrained build that run below the keep precision, in execution order."""
        low = LOWER[self.keep]
        out = []
        for lay in engine.plan.layers:
            if lay.precision in low and lay.origin and spec_name(lay) not in out:
                out.append(spec_name(lay))
        return out

    def run(self):
        """(the spec names to keep, {spec name: layer name}, number of candidates)."""
        engine = self.build([])
        names = {spec_name(lay): lay.name for lay in engine.plan.layers if lay.origin}
        cands = self.candidates(engine)
        return minimal_set(cands, self.passes), names, len(cands)


def layer_precisions_spec(kept: list, keep: str) -> str:
    """The forgeexec flags that reproduce the result."""
    return "--precisionConstraints=obey --layerPrecisions=" + ",".join(f"{n}:{keep}" for n in kept)
