"""The tactic registry: every tactic family (aten's reference and variants, each Triton family)
registers here with one decorator, `@tactic_family`, declaring as data its source, tactic names and
their kernel factories, library (the --tacticSources name), default level and whether its kernels
write into the output buffers they are given. The builder and the runtime ask the registry; none of
them constructs a kernel to learn its properties.

Sources are imported lazily, at the first question about them: triton only on CUDA devices with
triton installed, so that CPU machines never import it."""
from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import Callable

from ..errors import EngineFormatError
from .device import is_cuda
from .layouts import with_layouts

REFERENCE = {"source": "aten", "name": "reference", "params": {}}  # compare only; never hand it out


def reference() -> dict:
    """A fresh dict of aten's reference tactic (the op's reference implementation)."""
    return {"source": "aten", "name": "reference", "params": {}}


def _triton_usable(device) -> bool:
    return is_cuda(device) and importlib.util.find_spec("triton") is not None


# source -> (package that registers its families, whether it can offer tactics on a device); the
# order is the order of the candidates lists (aten's variants before triton's)
SOURCES = {"aten": ("tensorforge.kernels.aten", lambda device: True),
           "triton": ("tensorforge.kernels.triton", _triton_usable),
           "plugin": ("tensorforge.kernels.plugin_device", lambda device: True)}  # + user plugins' families


@dataclass(frozen=True)
class Family:
    """One tactic family: candidates(layer, shapes, device) -> [tactic] and a kernel factory per
    tactic name: factory(layer, attrs, opset, device, params) -> fn(inputs[, outs]) -> outputs."""
    name: str
    source: str
    factories: dict
    candidates: Callable
    library: str | Callable[[dict], str]  # or library(params), e.g. per SDPA backend
    level: int = 1                 # lowest optimization level that times a tactic without "level"
    writes_in_place: bool = False  # kernels take the output buffers: fn(inputs, outs) (takes_out)
    needs_shapes: bool = True      # offered only when the layer's shapes are known

    @property
    def tactics(self) -> tuple:
        return tuple(self.factories)


_FAMILIES: list = []
_BY_TACTIC: dict = {}


def tactic_family(source: str, factories: dict, *, library, level: int = 1, writes_in_place: bool = False,
                  needs_shapes: bool = True):
    """Register the decorated candidates function `fn(layer, shapes, device) -> [tactic]` as a
    family of `source` whose tactics are the keys of `factories` {name: factory}."""
    def deco(fn):
        name = fn.__name__.removesuffix("_candidates")
        register(Family(name, source, dict(factories), fn, library, level, writes_in_place, needs_shapes))
        return fn
    return deco


def register(fam: Family) -> None:
    """Add a family; a tactic name registered twice for one source raises."""
    taken = [n for n in fam.factories if (fam.source, n) in _BY_TACTIC]
    if taken:
        raise ValueError(f"{fam.source} tactic(s) {', '.join(taken)} registered twice "
                         f"({_BY_TACTIC[(fam.source, taken[0])].name} and {fam.name})")
    _FAMILIES.append(fam)
    for n in fam.factories:
        _BY_TACTIC[(fam.source, n)] = fam


def unregister(fam: Family) -> None:
    """Remove a family (tests that register a fake source)."""
    _FAMILIES.remove(fam)
    for n in fam.factories:
        _BY_TACTIC.pop((fam.source, n), None)


def load(source: str) -> bool:
    """Import a source's package (registers its families); False for a source without one."""
    if source not in SOURCES:
        return any(f.source == source for f in _FAMILIES)
    importlib.import_module(SOURCES[source][0])
    return True


def families() -> list:
    """The registered families in candidates order (by source, then registration)."""
    rank = {s: i for i, s in enumerate(SOURCES)}
    return sorted(_FAMILIES, key=lambda f: rank.get(f.source, len(rank)))


def family_of(tactic: dict) -> Family | None:
    """The family that builds a tactic (None for an unknown source or name)."""
    src, name = tactic.get("source", "aten"), tactic.get("name", "reference")
    if (src, name) not in _BY_TACTIC and src in SOURCES:
        load(src)
    return _BY_TACTIC.get((src, name))


def writes_in_place(tactic: dict) -> bool:
    """Whether the tactic's kernel writes its outputs into the buffers it is given."""
    fam = family_of(tactic)
    return fam is not None and fam.writes_in_place


def library_of(tactic: dict) -> str:
    """The tactic-source library a tactic belongs to (CUBLAS, CUBLAS_LT, CUDNN, ATEN, TRITON...)."""
    fam = family_of(tactic)
    if fam is None:
        return str(tactic.get("source", "")).upper()
    return fam.library(tactic.get("params", {})) if callable(fam.library) else fam.library


def level_of(tactic: dict) -> int:
    """Lowest builder optimization level that times the tactic (its "level" key, else its family's)."""
    if "level" in tactic:
        return int(tactic["level"])
    fam = family_of(tactic)
    return fam.level if fam is not None else 1


def candidates(layer, shapes, device) -> list[dict]:
    """All tactics the sources usable on `device` offer for a layer whose input/output descriptions
    are `shapes` (a LayerShapes, None when data-dependent); aten's reference is always last."""
    usable = {s for s, (_, ok) in SOURCES.items() if ok(device) and load(s)}
    out = []
    for fam in families():
        if (fam.source in SOURCES and fam.source not in usable) or (shapes is None and fam.needs_shapes):
            continue
        out += [t for t in fam.candidates(layer, shapes, device) if t is not None]
    return [t for t in out if t != REFERENCE] + [reference()]


def make_kernel(layer, opset: int, device):
    """Build the callable for one LayerSpec from its tactic."""
    tactic = layer.tactic
    src, name = tactic.get("source", "aten"), tactic.get("name", "reference")
    fam = family_of(tactic)
    if fam is None:
        if src == "plugin":  # host code is never stored in an engine: the user loads the module
            mod = tactic.get("params", {}).get("module") or "its plugin module"
            raise EngineFormatError(f"layer '{layer.name}' runs plugin implementation '{name}' (host code): "
                                    f"load {mod} first (tensorforge.plugin.load / --staticPlugins)")
        if not load(src):
            raise EngineFormatError(f"layer '{layer.name}': unknown tactic source '{src}'")
        raise EngineFormatError(f"layer '{layer.name}': unknown {src} tactic '{name}'")
    from ..ir.attrs import from_json  # lazily: the registry itself imports no ir (runtime <- kernels)
    attrs = {k: from_json(a) for k, a in layer.attrs.items()}
    params = dict(tactic.get("params", {}))
    return with_layouts(fam.factories[name](layer, attrs, opset, device, params), params)


def check_plugins(plan, source: str) -> None:
    """Refuse to load an engine whose plugin layers run host code that is not loaded (one line
    naming the op and the module to load). Engines never store host code."""
    for name, e in sorted((plan.meta.get("plugins") or {}).items()):
        if not any(f.name == f"plugin {name}" for f in _FAMILIES):
            raise EngineFormatError(f"{source}: engine uses plugin op '{name}' with a host-side implementation;"
                                    f" load its module first: {e.get('module') or '(module unknown)'} "
                                    "(tensorforge.plugin.load(path) / --staticPlugins=path)")
