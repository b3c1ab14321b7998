"""Op registry and the ONNX ops by family (activation.py, math.py, ... training.py, ml.py) plus the
optimizer's fused ops (fused/); `registry.MODULES` lists the modules, imported on first lookup."""
from .registry import get, has, supported_ops

__all__ = ["get", "has", "supported_ops"]
