"""Runtime: loads engine files and executes them. Needs nothing from the optimizer."""
from .context import ExecutionContext
from .engine import Engine, LayerInfo, TensorDesc

__all__ = ["Engine", "ExecutionContext", "TensorDesc", "LayerInfo"]
