"""Triton tactic "fp16_form_pw": a quantized weighted layer (fused.QConv / QGemm / QMatMul) run in FP16
the way an FP16 engine would run it, as the no-regression candidate that a quantized kernel must beat.

aten's fp16_form runs dequantize, the float op, the epilogue and the output Q as separate torch ops,
in fp32 in places: session 9 on the H200 timed it 10-15x the FP16 engines' layers (45 ms summed over
ResNet-50 at bs 128, where the whole FP16 engine takes 3.4 ms), so no quantized tactic ever lost to it.
Here: the input is dequantized into FP16 (int8 and e4m3 values are exact in FP16, times the scale),
the conv runs channels-last through cuDNN (the weight dequantized once and kept, laid out NHWC) or the
GEMM through cuBLAS, and everything after it (bias, the layer's epilogue, its dequantized extras, the
output Q) is one generated pointwise kernel (kernels.quant_gemm.followup_expr), written into the NHWC
chain's buffer in place for a conv (runners.EpilogueRunner's channels-last path)."""
from __future__ import annotations

import torch

from ... import dtypes
from ...ops.conv import conv_ref
from ...ops.fused.epilogue import CONV_ATTRS
from ...ops.fused.expr import expr_dtype
from ..device import is_cuda
from ..registry import tactic_family

TYPES = ("fused.QConv", "fused.QGemm", "fused.QMatMul")
QTYPES = ("int8", "uint8", "float8e4m3fn")


def _final_dtype(attrs, extra_dtypes) -> str:
    """The reference's output type: the output Q's, else the epilogue's over the layer's float type."""
    out_q, anchor = attrs.get("out_q"), attrs.get("out_dtype", "float32")
    if out_q:
        return out_q[2]
    epi = attrs.get("epilogue")
    if not epi:
        return anchor
    eq = attrs.get("extra_q") or []
    seen = [anchor if j < len(eq) and eq[j] else dt for j, dt in enumerate(extra_dtypes)]
    return expr_dtype(epi, [anchor] + seen)


def followup(attrs, n_extras: int, bias: bool, final: str) -> dict:
    """[y, bias?, extras...] -> the layer's output: kernels.quant_gemm.followup_expr, cast to `final`."""
    from ..quant_gemm import followup_expr
    expr = followup_expr(attrs, n_extras, False, bias) or {"nodes": [{"op": "input", "i": 0}], "out": 0}
    if expr_dtype(expr, ["float16"] + ["float32"] * bias + ["float16"] * n_extras) != final:
        nodes = list(expr["nodes"]) + [{"op": "Cast", "args": [expr["out"]], "attrs": {"to": dtypes.to_onnx(final)}}]
        expr = {"nodes": nodes, "out": len(nodes) - 1}
    return expr


def make_fp16_form(layer, attrs, opset, device, params):
    """The runner: (xq, wq, bias, w_scale, extras...) -> [output], falling back to the reference."""
    from ...ops import registry
    from ...ops.fused.quant import float_weight
    from .runners import EpilogueRunner
    op = registry.get(layer.type, layer.domain, layer.name)
    n_extras = max(0, len(layer.inputs) - 4)
    dt = torch.bfloat16 if attrs.get("out_dtype") == "bfloat16" else torch.float16
    conv = layer.type == "fused.QConv"
    conv_attrs = {k: v for k, v in attrs.items() if k in CONV_ATTRS}
    kept: dict = {}

    def weight(wq, ws):
        key = (wq.data_ptr(), wq._version, ws.data_ptr(), ws._version, tuple(wq.shape))
        w = kept.get(key)
        if w is None:  # a refit writes the quantized weight in place: its version changes
            kept.clear()
            w = float_weight(layer.type, wq, ws, attrs, dt)
            if conv and w.dim() == 4:
                w = w.contiguous(memory_format=torch.channels_last)
            kept[key] = w
        return w

    def anchor(lead):
        xq, wq, ws = lead
        x = xq.to(dt)
        if attrs.get("x_zp"):
            x = x.sub_(float(attrs["x_zp"]))
        x = x.mul_(float(attrs.get("x_scale", 1.0)))
        w = weight(wq, ws)
        if conv:
            return conv_ref(x, w, None, **conv_attrs)
        y = torch.matmul(x, w.t() if attrs.get("transB", 0) else w)
        return y.mul_(float(attrs.get("alpha", 1.0))) if float(attrs.get("alpha", 1.0)) != 1.0 else y

    def reference(inputs):
        return op.run(inputs, attrs, opset)

    runners: dict = {}  # with a bias / without: one follow-up expression each

    def fn(inputs, outs=None):
        ins = list(inputs) + [None] * max(0, 4 - len(inputs))
        xq, wq, bias, ws = ins[:4]
        if xq is None or wq is None or ws is None or dtypes.from_torch(xq.dtype) not in QTYPES \
                or len(ins) - 4 != n_extras:
            return list(reference(inputs))
        has_bias = bias is not None
        runner = runners.get(has_bias)
        if runner is None:
            final = params.get("out_dtype") or _final_dtype(attrs, [dtypes.from_torch(e.dtype) for e in ins[4:]])
            expr = followup(attrs, n_extras, has_bias, final)
            runner = runners[has_bias] = EpilogueRunner({"epilogue": expr}, params, reference, anchor, 3)
        extra = [] if not has_bias else \
            [bias.reshape((-1, 1, 1)) if conv and xq.dim() == 4 else bias.reshape(-1)]
        return runner([xq, wq, ws] + extra + ins[4:], outs)
    fn.takes_out = True
    return fn


@tactic_family("triton", {"fp16_form_pw": make_fp16_form}, library="TRITON", writes_in_place=True)
def fp16_form_candidates(layer, shapes, device) -> list[dict]:
    """One tactic per quantized weighted layer on CUDA (channels-last for a 2-D conv)."""
    if not is_cuda(device) or layer.type not in TYPES or shapes is None:
        return []
    x, out = shapes.inp(0), shapes.out(0)
    if x is None or out is None or x["dtype"] not in QTYPES:
        return []
    p = {"BLOCK": 1024, "num_warps": 4, "out_dtype": out["dtype"], "form": "fp16"}  # form: strict Q/DQ drops it
    if layer.type == "fused.QConv" and len(x["shape"]) == 4 and not layer.attrs.get("transpose"):
        p.update(nhwc_ok=True, weight_layout="channels_last")
    elif layer.type == "fused.QConv":
        return []
    return [{"source": "triton", "name": "fp16_form_pw", "level": 2, "params": p}]
