"""Quantized fused layers: what a DQ -> op (-> epilogue) (-> Q) subgraph computes, as one layer.

fused.QConv / fused.QGemm / fused.QMatMul (weighted): inputs (xq, wq, bias, w_scale, *extra);
the accumulator is the exact integer (or fp8 product) sum of (xq - x_zp)·(wq - w_zp), computed in
float64, scaled by x_scale·w_scale (per tensor or per output channel), plus the bias; then the
epilogue (activation, residual) in the layer's `out_dtype` (float32 unless the graph's DQ output /
following op says float16 or bfloat16) on the extra inputs, each dequantized when `extra_q`
names its [scale, zero point]; then, with `out_q` = [scale, zero point, dtype], the output Q.
fused.QOp (non-weighted, quantizable): runs `op` on the dequantized inputs (`in_q` per input) and
quantizes its output (`out_q`): exactly the DQ -> op -> Q graph.
"""
from __future__ import annotations

from types import SimpleNamespace

import torch

from ... import dtypes
from ..conv import conv_infer, conv_ref
from ..matmul import matmul_infer
from ..quant import dequantize, quantize
from ..registry import get, infer, reference
from .epilogue import CONV_ATTRS, apply_epilogue, epilogue_info


def deq(q, spec):
    """Dequantize q with spec [scale, zero point] (a float tensor when spec is None)."""
    if spec is None or q.dtype.is_floating_point and q.dtype.itemsize > 1:
        return q
    s, z = spec[0], spec[1]
    return dequantize(q, torch.tensor(float(s), dtype=torch.float32),
                      None if not z else torch.tensor(int(z)), out_dt=torch.float32)


def req(y, spec):
    """Quantize y with spec [scale, zero point, dtype name] (y unchanged when spec is None)."""
    if not spec:
        return y
    dt = dtypes.to_torch(spec[2])
    zp = None if dt.is_floating_point else torch.tensor(int(spec[1]), dtype=dt)
    return quantize(y, torch.tensor(float(spec[0]), dtype=torch.float32), zp, dt)


def _centered(q, zp):
    v = q.to(torch.float64)
    return v - float(zp) if zp else v


def _out_scale(x_scale, w_scale, dims):
    """x_scale · w_scale in float64, broadcast over the output channel dim (1 for conv, -1 for GEMM)."""
    s = w_scale.to(torch.float64) * float(x_scale)
    if s.numel() == 1:
        return s.reshape(())
    shape = [1] * dims[0]
    shape[dims[1]] = -1
    return s.reshape(shape)


def _finish(acc, s, bias, extra, epilogue, extra_q, out_q, opset, out_dtype="float32"):
    y = acc * s
    if bias is not None:
        y = y + bias.to(torch.float64)
    y = y.to(dtypes.to_torch(out_dtype))
    ex = _extras(extra, extra_q, y.dtype)
    return req(apply_epilogue(y, epilogue, ex, opset), out_q)


def _extras(extra, extra_q, dt):
    """The epilogue's extra inputs, the quantized ones dequantized into the layer's type (the DQ's)."""
    eq = extra_q or []
    return [deq(e, eq[i]).to(dt) if i < len(eq) and eq[i] else e for i, e in enumerate(extra)]


@reference("fused.QConv")
def qconv_ref(xq, wq, bias=None, w_scale=None, *extra, x_scale=1.0, x_zp=0, w_zp=0, epilogue=None,
              extra_q=None, out_q=None, out_dtype="float32", _opset=17, **conv):
    acc = conv_ref(_centered(xq, x_zp), _centered(wq, w_zp), None, **conv)
    b = None if bias is None else bias.reshape((1, -1) + (1,) * (acc.dim() - 2))
    return _finish(acc, _out_scale(x_scale, w_scale, (acc.dim(), 1)), b, extra, epilogue, extra_q, out_q, _opset,
                   out_dtype)


def _float_io(node, n):
    """A view of the node whose first n inputs read as float32 (for the float op's infer)."""
    ins = [SimpleNamespace(dtype="float32", shape=v.shape) if v is not None else None for v in node.inputs[:n]]
    return ins


def _anchor(node) -> str:
    """The float type the scaled accumulator is written in (the graph's type after the DQ)."""
    return node.attrs.get("out_dtype", "float32")


def _typed(node, dt, shp):
    q = node.attrs.get("out_q")
    return [(q[2] if q else dt, shp)]


@infer("fused.QConv")
def qconv_infer(node):
    conv = {k: a for k, a in node.attrs.items() if k in CONV_ATTRS}
    fake = SimpleNamespace(inputs=_float_io(node, 2), attrs=conv, name=node.name, outputs=node.outputs)
    dt, shp = conv_infer(fake)[0]
    return _typed(node, *epilogue_info(_anchor(node), shp, node.attrs.get("epilogue"), node.inputs[4:]))


@reference("fused.QGemm")
def qgemm_ref(xq, wq, bias=None, w_scale=None, *extra, x_scale=1.0, x_zp=0, w_zp=0, transA=0, transB=0,
              alpha=1.0, beta=1.0, epilogue=None, extra_q=None, out_q=None, out_dtype="float32", _opset=17):
    a = _centered(xq, x_zp)
    w = _centered(wq, w_zp)
    acc = torch.matmul(a.t() if transA else a, w.t() if transB else w)
    b = None if bias is None else bias.to(torch.float64) * beta
    return _finish(acc * alpha, _out_scale(x_scale, w_scale, (2, 1)), b, extra, epilogue, extra_q, out_q, _opset,
                   out_dtype)


@infer("fused.QGemm")
def qgemm_infer(node):
    a, b = node.inputs[0].shape, node.inputs[1].shape
    m = a[1] if node.attrs.get("transA", 0) else a[0]
    n = b[0] if node.attrs.get("transB", 0) else b[1]
    return _typed(node, *epilogue_info(_anchor(node), (m, n), node.attrs.get("epilogue"), node.inputs[4:]))


@reference("fused.QMatMul")
def qmatmul_ref(xq, wq, bias=None, w_scale=None, *extra, x_scale=1.0, x_zp=0, w_zp=0, epilogue=None,
                extra_q=None, out_q=None, out_dtype="float32", _opset=17):
    acc = torch.matmul(_centered(xq, x_zp), _centered(wq, w_zp))
    return _finish(acc, _out_scale(x_scale, w_scale, (acc.dim(), -1)), bias, extra, epilogue, extra_q, out_q,
                   _opset, out_dtype)


@infer("fused.QMatMul")
def qmatmul_infer(node):
    fake = SimpleNamespace(inputs=_float_io(node, 2), attrs={}, name=node.name)
    _, shp = matmul_infer(fake)[0]
    return _typed(node, *epilogue_info(_anchor(node), shp, node.attrs.get("epilogue"), node.inputs[4:]))


@reference("fused.QOp")
def qop_ref(*inputs, op, attrs=None, in_q=None, out_q=None, _opset=17):
    """Q(op(DQ(x0), DQ(x1), ...)): the inner op's reference on dequantized inputs."""
    xs = [None if x is None else deq(x, in_q[i] if in_q and i < len(in_q) else None) for i, x in enumerate(inputs)]
    y = get(op).run(xs, attrs or {}, _opset, 1)[0]
    return req(y, out_q)


@infer("fused.QOp")
def qop_infer(node):
    in_q = node.attrs.get("in_q") or []
    ins = [SimpleNamespace(dtype="float32" if i < len(in_q) and in_q[i] else v.dtype, shape=v.shape,
                           const=getattr(v, "const", None), sym=getattr(v, "sym", None))
           if v is not None else None for i, v in enumerate(node.inputs)]
    fake = SimpleNamespace(inputs=ins, attrs=node.attrs.get("attrs") or {}, name=node.name, op=node.attrs["op"],
                           outputs=node.outputs, domain="")
    dt, shp = get(node.attrs["op"]).infer(fake)[0]
    return _typed(node, dt, shp)


def float_weight(op, wq, w_scale, attrs, dtype):
    """The dequantized weight of a quantized weighted layer in `dtype` (exact in float64, rounded once)."""
    wc = _centered(wq, attrs.get("w_zp", 0))
    if op == "fused.QConv":
        return (wc * w_scale.to(torch.float64).reshape((-1,) + (1,) * (wq.dim() - 1))).to(dtype)
    axis = 0 if op == "fused.QGemm" and attrs.get("transB", 0) else -1
    shape = [1] * wq.dim()
    shape[axis] = -1
    return (wc * w_scale.to(torch.float64).reshape(shape if w_scale.numel() > 1 else ())).to(dtype)


def float_form(op, inputs, attrs, dtype, opset=17, w=None):
    """The FP16 (float) form of a quantized weighted layer: dequantize the input and the weight, run the
    float op in `dtype`, then the same epilogue and output Q (the "no regression" candidate).
    w: the weight already dequantized (float_weight), as a kernel keeps it between calls."""
    xq, wq, bias, w_scale, *extra = list(inputs) + [None] * max(0, 4 - len(inputs))
    a = {k: v for k, v in attrs.items() if k not in ("x_scale", "x_zp", "w_zp", "epilogue", "extra_q", "out_q",
                                                      "out_dtype")}
    x = deq(xq, [attrs.get("x_scale", 1.0), attrs.get("x_zp", 0)]).to(dtype)
    if w is None:
        w = float_weight(op, wq, w_scale, attrs, dtype)
    if op == "fused.QConv":
        acc = conv_ref(x, w, None, **{k: v for k, v in a.items() if k in CONV_ATTRS})
        b = None if bias is None else bias.reshape((1, -1) + (1,) * (acc.dim() - 2))
    else:
        if op == "fused.QGemm":
            acc = torch.matmul(x, w.t() if a.get("transB", 0) else w) * float(a.get("alpha", 1.0))
        else:
            acc = torch.matmul(x, w)
        b = bias
    y = (acc.float() + (0 if b is None else b.float())).to(dtypes.to_torch(attrs.get("out_dtype", "float32")))
    return req(apply_epilogue(y, attrs.get("epilogue"), _extras(extra, attrs.get("extra_q"), y.dtype), opset),
               attrs.get("out_q"))
