"""SDPA attention tactics (flash, cuDNN, memory-efficient, math backends) for fused attention
layers (op type fused.Attention, added by the fusion pass)."""
from __future__ import annotations

ATTENTION_TYPES = ("fused.Attention",)
