"""tensorforge: an inference optimizer and runtime for ONNX models on NVIDIA GPUs.

Names are imported lazily (PEP 562): `import tensorforge.runtime` loads the runtime only, never
the optimizer (builder, passes, frontend, onnx, sympy)."""
from __future__ import annotations

import importlib

from .version import __version__

_LAZY = {"Builder": ".builder", "BuilderConfig": ".builder", "OptimizationProfile": ".builder",
         "TimingCache": ".builder.timing_cache", "TensorforgeError": ".errors",
         "Engine": ".runtime", "ExecutionContext": ".runtime", "Refitter": ".builder.refit",
         "plugin": ".plugin"}


class Profiler:
    """Per-layer timing hook: set `context.profiler`; override report_layer_time."""

    def report_layer_time(self, layer_name: str, ms: float) -> None:  # pragma: no cover - interface
        pass


def __getattr__(name: str):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'tensorforge' has no attribute {name!r}")
    module = importlib.import_module(mod, __name__)
    value = module if mod == "." + name else getattr(module, name)  # a subpackage (tensorforge.plugin)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["Builder", "BuilderConfig", "OptimizationProfile", "TimingCache", "Engine", "ExecutionContext",
           "Refitter", "Profiler", "TensorforgeError", "__version__"]
