"""tensorforge: an inference optimizer and runtime for ONNX models on NVIDIA GPUs."""
__version__ = "0.1.0"

from .builder import Builder, BuilderConfig, OptimizationProfile  # noqa: E402
from .builder.timing_cache import TimingCache  # noqa: E402
from .errors import TensorforgeError  # noqa: E402
from .runtime import Engine, ExecutionContext  # noqa: E402


class Profiler:
    """Per-layer timing hook: set `context.profiler`; override report_layer_time."""

    def report_layer_time(self, layer_name: str, ms: float) -> None:  # pragma: no cover - interface
        pass


__all__ = ["Builder", "BuilderConfig", "OptimizationProfile", "Engine", "ExecutionContext",
           "Profiler", "TensorforgeError", "__version__"]
