"""Build: passes, precision, tactics, memory plan -> Engine.

Builder is imported at first use (PEP 562): the config dataclasses import nothing heavy, so the
CLIs read their defaults without loading the optimizer or torch."""
from .config import BuilderConfig, OptimizationProfile


def __getattr__(name: str):
    if name == "Builder":
        from .builder import Builder
        return Builder
    raise AttributeError(f"module 'tensorforge.builder' has no attribute {name!r}")


__all__ = ["Builder", "BuilderConfig", "OptimizationProfile"]
