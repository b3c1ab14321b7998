"""tensorforge: an inference optimizer and runtime for ONNX models on NVIDIA GPUs."""
from .builder import Builder, BuilderConfig, OptimizationProfile
from .builder.timing_cache import TimingCache
from .errors import TensorforgeError
from .runtime import Engine, ExecutionContext
from .version import __version__


class Profiler:
    """Per-layer timing hook: set `context.profiler`; override report_layer_time."""

    def report_layer_time(self, layer_name: str, ms: float) -> None:  # pragma: no cover - interface
        pass


__all__ = ["Builder", "BuilderConfig", "OptimizationProfile", "Engine", "ExecutionContext",
           "Profiler", "TensorforgeError", "__version__"]
