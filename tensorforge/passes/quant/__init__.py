"""Quantization passes (Q/DQ graphs, strongly typed): rule tables in `tables`, weight
canonicalization, Q/DQ propagation, quantized layer fusion, residual inputs, and lowering of the
Q/DQ nothing absorbed into pointwise expressions."""
from __future__ import annotations

from .canonicalize import has_qdq, quant_canonicalize, quant_unfold_weights
from .finish import quant_attention_out, quant_inline_operands, quant_residual
from .fuse import quant_fuse
from .lower import quant_lower_pairs, quant_lower_rest
from .propagate import quant_propagate
from .skip_norm import quant_skip_norm
from .tables import COMMUTES_WITH_DQ, COMMUTES_WITH_Q, QUANTIZABLE, QUANTIZED_LAYERS, WEIGHTED, keeps_dequantize

__all__ = ["has_qdq", "quant_canonicalize", "quant_unfold_weights", "quant_residual", "quant_attention_out",
           "quant_inline_operands", "quant_skip_norm", "quant_fuse", "quant_lower_pairs", "quant_lower_rest",
           "quant_propagate", "COMMUTES_WITH_DQ", "COMMUTES_WITH_Q", "QUANTIZABLE", "QUANTIZED_LAYERS", "WEIGHTED",
           "keeps_dequantize"]
