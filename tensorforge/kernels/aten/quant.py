"""Tactics of the quantized layers (fused.QConv / QGemm / QMatMul). The reference computes the exact
quantized arithmetic; tactic "fp16_form" is the same layer run in FP16 (FP32 on the CPU) from the
dequantized weights: a candidate of the same layer, so that timing keeps a quantized layer only when
it is faster than its FP16 form (TensorRT's "no regression" rule). Builds that obey Q/DQ strictly
drop it (builder.tactics)."""
from __future__ import annotations

import torch

from ...ops.fused.quant import float_form, float_weight
from ..registry import tactic_family
from . import tactic

QUANTIZED_WEIGHTED = ("fused.QConv", "fused.QGemm", "fused.QMatMul")


def fp16_form_kernel(layer, attrs, opset, device, params):
    """fn(inputs) -> [output]: dequantize, float op, epilogue, output Q. The dequantized weight is
    kept between calls (the FP16 engine has it ready too): made again only when the quantized weight
    or its scales change (a refit writes them in place: another version of the same tensor)."""
    dtype = torch.float16 if getattr(device, "type", str(device)) == "cuda" else torch.float32
    kept = {}

    def fn(inputs):
        wq, w_scale = inputs[1], inputs[3]
        key = (wq.data_ptr(), wq._version, w_scale.data_ptr(), w_scale._version, tuple(wq.shape))
        w = kept.get(key)
        if w is None:
            kept.clear()
            w = kept[key] = float_weight(layer.type, wq, w_scale, attrs, dtype)
        return [float_form(layer.type, inputs, attrs, dtype, opset, w=w)]
    return fn


@tactic_family("aten", {"fp16_form": fp16_form_kernel}, library="ATEN", needs_shapes=False)
def quant_candidates(layer, shapes, device):
    """The FP16 form of a quantized weighted layer (the reference is the quantized form)."""
    if layer.type not in QUANTIZED_WEIGHTED:
        return []
    return [tactic("fp16_form", level=2, form="fp16")]
