"""Post-training quantization (`tensorforge quantize`): calibrate, place Q/DQ as ModelOpt does,
write a Q/DQ ONNX model that ONNX Runtime and tensorforge both run."""
from __future__ import annotations

from .cache import read_cache, write_cache
from .calib import CALIBRATORS, Collector
from .data import load_batches, parse_spec
from .placement import place
from .quantize import has_qdq, quantize, scales_of

__all__ = ["read_cache", "write_cache", "CALIBRATORS", "Collector", "load_batches", "parse_spec", "place",
           "has_qdq", "quantize", "scales_of"]
