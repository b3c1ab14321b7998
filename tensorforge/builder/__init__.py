"""Build: passes, precision, tactics, memory plan -> Engine."""
from .builder import Builder
from .config import BuilderConfig, OptimizationProfile

__all__ = ["Builder", "BuilderConfig", "OptimizationProfile"]
