"""Tactics of the quantized layers (fused.QConv / QGemm / QMatMul). The reference computes the exact
quantized arithmetic; tactic "fp16_form" is the same layer run in FP16 (FP32 on the CPU) from the
dequantized weights: a candidate of the same layer, so that timing keeps a quantized layer only when
it is faster than its FP16 form (TensorRT's "no regression" rule). Builds that obey Q/DQ strictly
drop it (builder.tactics)."""
from __future__ import annotations

import torch

from ...ops.fused.quant import float_form
from ..registry import tactic_family
from . import tactic

QUANTIZED_WEIGHTED = ("fused.QConv", "fused.QGemm", "fused.QMatMul")


def fp16_form_kernel(layer, attrs, opset, device, params):
    """fn(inputs) -> [output]: dequantize, float op, epilogue, output Q."""
    dtype = torch.float16 if getattr(device, "type", str(device)) == "cuda" else torch.float32

    def fn(inputs):
        return [float_form(layer.type, inputs, attrs, dtype, opset)]
    return fn


@tactic_family("aten", {"fp16_form": fp16_form_kernel}, library="ATEN", needs_shapes=False)
def quant_candidates(layer, shapes, device):
    """The FP16 form of a quantized weighted layer (the reference is the quantized form)."""
    if layer.type not in QUANTIZED_WEIGHTED:
        return []
    return [tactic("fp16_form", level=2, form="fp16")]
