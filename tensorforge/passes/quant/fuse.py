"""Quantized layer fusion: DQ(x)·DQ(w) -> Conv / Gemm / MatMul becomes one fused.QConv / QGemm /
QMatMul (+ BatchNormalization folded into its weight scales and bias); a quantizable layer with
DQ inputs (and a Q output) becomes one fused.QOp."""
from __future__ import annotations

import torch

from ...ir import Graph
from ...ops.fused.epilogue import CONV_ATTRS
from ..rewrite import Decline, Op, Rule, const_like, fuse, rule_pass
from .params import spec, weight_scale
from .tables import QUANTIZABLE, QUANTIZED_LAYERS, WEIGHTED, weight_axis


def _dq(v):
    n = v.producer if v is not None else None
    return n if n is not None and n.op == "DequantizeLinear" else None


def _bias(node, n_out):
    """The layer's constant bias as a 1-D float32 tensor (None: no bias; False: not fusable)."""
    b = node.inputs[2] if len(node.inputs) > 2 else None
    if b is None:
        return None
    if b.const is None:
        return False
    c = b.const.float()
    if node.op == "Gemm":
        c = c * float(node.attrs.get("beta", 1.0))
    if c.numel() == 1:
        return c.reshape(1).expand(n_out).contiguous()
    return c.reshape(-1) if c.numel() == n_out and (c.dim() == 1 or c.shape[-1] == n_out) else False


def quantized_weighted(g: Graph, m) -> bool:
    """op(DQ(xq), DQ(wq), b) -> fused.Q<op>(xq, wq, b, w_scale): the accumulator is the integer
    (fp8) dot product of (xq − x_zp)·(wq − w_zp), scaled by x_scale·w_scale[o], plus b."""
    op = m.root
    dx, dw = _dq(op.inputs[0]), _dq(op.inputs[1])
    if dx is None or dw is None:
        return Decline("an input or the weight is not dequantized (weight-only or unquantized input)")
    sx = spec(dx)
    if sx is None:
        return Decline("the input DQ is not per-tensor with constant parameters")
    if dw.inputs[0].const is None:
        return Decline("the weight is not constant")
    axis = weight_axis(op)
    ws = weight_scale(dw, axis)
    if ws is None:
        return Decline("the weight is block-quantized, per-axis on another dim, or has per-channel zero points")
    if op.op == "Gemm" and op.attrs.get("transA", 0):
        return Decline("Gemm with transA")
    if op.op == "MatMul" and len(dw.inputs[0].shape) != 2:
        return Decline("MatMul weight is not 2-D")
    if dx.inputs[0].dtype.startswith("float8") != dw.inputs[0].dtype.startswith("float8"):
        return Decline("input and weight mix integer and float8 types")
    n_out = dw.inputs[0].shape[axis]
    bias = _bias(op, n_out)
    if bias is False:
        return Decline("the bias is not a constant vector over output channels")
    attrs = {"x_scale": sx[0], "x_zp": sx[1], "w_zp": ws[1]}
    if op.outputs[0].dtype != "float32":  # an FP16 / BF16 Q/DQ model: the layer writes the graph's type
        attrs["out_dtype"] = op.outputs[0].dtype
    if op.op == "Conv":
        attrs.update({k: a for k, a in op.attrs.items() if k in CONV_ATTRS})
    elif op.op == "Gemm":
        attrs.update(transB=op.attrs.get("transB", 0), alpha=float(op.attrs.get("alpha", 1.0)))
    ins = [dx.inputs[0], dw.inputs[0], None if bias is None else const_like(g, bias, f"{op.name}.bias"),
           const_like(g, ws[0], f"{op.name}.w_scale")]
    new = fuse(g, [op], WEIGHTED[op.op], ins, attrs, [op.outputs[0]], f"Q{op.op}")
    new.origin = list(dict.fromkeys([dx.name, dw.name] + new.origin))
    return True


def qconv_bn(g: Graph, m) -> bool:
    """BN(QConv(...)) -> QConv with w_scale·s and bias·s + t, s = γ/√(σ²+ε), t = β − μ·s."""
    bn, conv = m.root, m["conv"]
    if conv.attrs.get("epilogue") or conv.attrs.get("out_q"):
        return Decline("the quantized conv already has an epilogue or an output Q")
    if len(bn.outputs) != 1 or bn.attrs.get("training_mode", 0) or any(v.const is None for v in bn.inputs[1:5]):
        return Decline("BatchNormalization in training mode or with non-constant parameters")
    gamma, beta, mean, var = (v.const.double().reshape(-1) for v in bn.inputs[1:5])
    s = gamma / torch.sqrt(var + bn.attrs.get("epsilon", 1e-5))
    t = beta - mean * s
    ws = conv.inputs[3].const.double()
    n = conv.inputs[1].shape[0]
    if s.numel() != n:
        return Decline("BatchNormalization channels differ from the conv's output channels")
    b = conv.inputs[2].const.double() if conv.inputs[2] is not None else torch.zeros(n, dtype=torch.float64)
    new_ws = const_like(g, (ws.expand(n) * s).float(), f"{conv.name}.w_scale_bn")
    new_b = const_like(g, (b * s + t).float(), f"{bn.name}.bias_folded")
    fuse(g, [conv, bn], conv.op, [conv.inputs[0], conv.inputs[1], new_b, new_ws] + list(conv.inputs[4:]),
         conv.attrs, [bn.outputs[0]], "QConvBN")
    return True


def quantized_op(g: Graph, m) -> bool:
    """Q(op(DQ(a), DQ(b), c...)) -> fused.QOp(a, b, c...; op): the op on dequantized inputs, quantized."""
    q, op = m.root, m["op"]
    in_q = []
    ins = []
    for v in op.inputs:
        d = _dq(v)
        if v is None or v.const is not None:
            in_q.append(None)
            ins.append(v)
        elif d is not None and spec(d) is not None:
            in_q.append(spec(d))
            ins.append(d.inputs[0])
        else:
            return Decline("a non-constant input is not dequantized per tensor")
    out_q = spec(q)
    if out_q is None or len(op.outputs) != 1:
        return Decline("the output Q is not per-tensor, or the op has several outputs")
    attrs = {"op": op.op, "attrs": dict(op.attrs), "in_q": in_q, "out_q": out_q}
    fuse(g, [op, q], "fused.QOp", ins, attrs, [q.outputs[0]], "QOp", name=f"{op.name} (quantized)")
    return True


FUSE_RULES = [
    Rule("QWeighted", Op(tuple(WEIGHTED), any_args=True), quantized_weighted, shared=True),
    Rule("QConvBN", Op("BatchNormalization", Op("fused.QConv", any_args=True, name="conv"), prefix=True), qconv_bn),
    Rule("QOp", Op("QuantizeLinear", Op(tuple(QUANTIZABLE), any_args=True, name="op"), prefix=True), quantized_op),
]
quant_fuse = rule_pass("quant_fuse", FUSE_RULES)
__all__ = ["quant_fuse", "QUANTIZED_LAYERS"]
