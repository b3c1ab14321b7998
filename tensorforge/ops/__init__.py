"""Op registry: reference implementations (torch) and inference rules for every supported op."""
from .registry import get, has, supported_ops

__all__ = ["get", "has", "supported_ops"]
