"""Quantization ops: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, integer MatMul/Conv, QLinear*."""
from __future__ import annotations

import torch

from .. import dtypes
from ..ir.symbolic import broadcast
from .common import has_input, in_info, norm_axis
from .conv import conv_infer, conv_ref
from .lowbit import INT_RANGES, round_float4
from .registry import infer, reference

_F8 = (torch.float8_e4m3fn, torch.float8_e4m3fnuz, torch.float8_e5m2, torch.float8_e5m2fnuz)
# largest finite value and the magnitude from which round-to-nearest-even overflows
_F8_LIMITS = {torch.float8_e4m3fn: (448.0, 464.0, False), torch.float8_e4m3fnuz: (240.0, 248.0, False),
              torch.float8_e5m2: (57344.0, 61440.0, True), torch.float8_e5m2fnuz: (57344.0, 61440.0, False)}


def to_float8(x, dtype, saturate=1):
    """ONNX float8 conversion: saturate clamps (inf too) to the max finite; else overflow -> inf/NaN."""
    mx, over, has_inf = _F8_LIMITS[dtype]
    xf = x.float() if x.dtype != torch.float64 else x
    if saturate:
        return xf.clamp(-mx, mx).to(dtype)
    y = xf.clamp(-mx, mx).to(dtype)
    big = xf.abs() >= over
    if not bool(big.any()):
        return y
    bad = torch.full_like(xf, float("inf")).copysign(xf) if has_inf else torch.full_like(xf, float("nan"))
    return torch.where(big, bad, y.to(xf.dtype)).to(dtype)


def _int_range(dt):
    i = torch.iinfo(dt)
    return i.min, i.max


def _param(v, shape, axis, block_size):
    """Scale / zero point made broadcastable to x (per-tensor, per-axis or blocked)."""
    if v.dim() == 0 or v.numel() == 1:
        return v.reshape(())
    axis = norm_axis(axis, len(shape))
    if not block_size:
        dims = [1] * len(shape)
        dims[axis] = v.numel()
        return v.reshape(dims)
    return v.repeat_interleave(block_size, axis).narrow(axis, 0, shape[axis])


def _qtype(output_dtype=0):
    return dtypes.to_torch(dtypes.from_onnx(output_dtype)) if output_dtype else torch.uint8


def quantize(x, scale, zp, out_dt, axis=1, block_size=0, saturate=1):
    """round(x / scale) + zp, saturated to out_dt (or a float8 cast)."""
    ct = torch.float64 if x.dtype == torch.float64 else torch.float32
    q = x.to(ct) / _param(scale, x.shape, axis, block_size).to(ct)
    if out_dt in _F8:
        return to_float8(q, out_dt, saturate)
    q = torch.round(q)
    if zp is not None:
        q = q + _param(zp, x.shape, axis, block_size).to(ct)
    lo, hi = _int_range(out_dt)
    return q.clamp(lo, hi).to(torch.int64).to(out_dt)


def _quantize_small(x, scale, zp, name, axis, block_size):
    """Quantize into a sub-byte type (int4/uint4/int2/uint2 saturate, float4e2m1 rounds and saturates)."""
    q = x.to(torch.float32) / _param(scale, x.shape, axis, block_size).to(torch.float32)
    if name == "float4e2m1":
        return round_float4(q)
    q = torch.round(q)
    if zp is not None:
        q = q + _param(zp, x.shape, axis, block_size).to(torch.float32)
    lo, hi = INT_RANGES[name]
    return q.clamp(lo, hi).to(dtypes.to_torch(name))


@reference("QuantizeLinear")
def quantize_ref(x, y_scale, y_zero_point=None, axis=1, block_size=0, output_dtype=0, saturate=1,
                 precision=0):
    if output_dtype and dtypes.from_onnx(output_dtype) in dtypes.STORAGE_ONLY:
        return _quantize_small(x, y_scale, y_zero_point, dtypes.from_onnx(output_dtype), axis, block_size)
    out_dt = y_zero_point.dtype if y_zero_point is not None else _qtype(output_dtype)
    return quantize(x, y_scale, y_zero_point if out_dt not in _F8 else None, out_dt, axis, block_size,
                    saturate)


@infer("QuantizeLinear")
def quantize_infer(node):
    if has_input(node, 2):
        dt = node.inputs[2].dtype
        if dt in dtypes.STORAGE_ONLY:  # the reference sees only the storage type: name the target
            node.attrs["output_dtype"] = dtypes.to_onnx(dt)
    else:
        od = node.attrs.get("output_dtype", 0)
        dt = dtypes.from_onnx(od) if od else "uint8"
    return [(dt, node.inputs[0].shape)]


def dequantize(x, scale, zp=None, axis=1, block_size=0, out_dt=None):
    """(x - zp) * scale in float32, returned in the scale's type (or out_dt)."""
    ct = torch.float64 if scale.dtype == torch.float64 else torch.float32
    d = x.to(ct)
    if zp is not None and x.dtype not in _F8:
        d = d - _param(zp, x.shape, axis, block_size).to(ct)
    y = d * _param(scale, x.shape, axis, block_size).to(ct)
    return y.to(out_dt or scale.dtype)


@reference("DequantizeLinear")
def dequantize_ref(x, x_scale, x_zero_point=None, axis=1, block_size=0, output_dtype=0):
    out = dtypes.to_torch(dtypes.from_onnx(output_dtype)) if output_dtype else None
    return dequantize(x, x_scale, x_zero_point, axis, block_size, out)


@infer("DequantizeLinear")
def dequantize_infer(node):
    od = node.attrs.get("output_dtype", 0)
    return [(dtypes.from_onnx(od) if od else node.inputs[1].dtype, node.inputs[0].shape)]


@reference("DynamicQuantizeLinear")
def dynamic_quantize_ref(x):
    """uint8 quantization with scale/zero point from the data range (which always includes 0)."""
    xf = x.float()
    mx = xf.max().clamp(min=0)
    mn = xf.min().clamp(max=0)
    rng = torch.where(mx == mn, torch.ones_like(mx), mx - mn)
    scale = rng / 255.0
    zp = torch.round((0 - mn / scale).clamp(0, 255))
    y = (torch.round(xf / scale) + zp).clamp(0, 255)
    return y.to(torch.uint8), scale.to(x.dtype), zp.to(torch.uint8)


@infer("DynamicQuantizeLinear")
def dynamic_quantize_infer(node):
    x = node.inputs[0]
    return [("uint8", x.shape), (x.dtype, ()), ("uint8", ())]


def _exact(t):
    """Integer tensors in a type whose matmul/conv is exact on this device (float64 on CUDA)."""
    return t.to(torch.int64) if t.device.type == "cpu" else t.to(torch.float64)


def _centered(x, zp, per_row=False):
    v = x.to(torch.float64)
    if zp is not None:
        z = zp.to(torch.float64)
        if per_row and z.dim() == 1 and z.numel() > 1:
            z = z.reshape(-1, 1)
        v = v - z
    return v


@reference("MatMulInteger")
def matmul_integer_ref(a, b, a_zero_point=None, b_zero_point=None):
    y = torch.matmul(_exact(_centered(a, a_zero_point, True)), _exact(_centered(b, b_zero_point)))
    return y.to(torch.int32)


@infer("MatMulInteger")
def matmul_integer_infer(node):
    from .matmul import matmul_infer
    return [("int32", matmul_infer(node)[0][1])]


def _conv_integer(x, w, x_zp, w_zp, attrs):
    xc = _centered(x, x_zp)
    wc = w.to(torch.float64)
    if w_zp is not None:
        z = w_zp.to(torch.float64)
        wc = wc - (z.reshape((-1,) + (1,) * (w.dim() - 1)) if z.dim() == 1 and z.numel() > 1 else z)
    return conv_ref(xc, wc, None, **attrs)  # float64 conv of integers is exact at these sizes


@reference("ConvInteger")
def conv_integer_ref(x, w, x_zero_point=None, w_zero_point=None, **attrs):
    return torch.round(_conv_integer(x, w, x_zero_point, w_zero_point, attrs)).to(torch.int32)


@infer("ConvInteger")
def conv_integer_infer(node):
    return [("int32", conv_infer(node)[0][1])]


def _requantize(acc, scale, y_scale, y_zp, dt):
    r = acc * (scale / y_scale.to(torch.float64))
    if y_zp is not None:
        r = r + y_zp.to(torch.float64)
    lo, hi = _int_range(dt)
    return torch.round(r).clamp(lo, hi).to(dt)


@reference("QLinearMatMul")
def qlinear_matmul_ref(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point):
    acc = torch.matmul(_centered(a, a_zero_point, True), _centered(b, b_zero_point))
    s = a_scale.to(torch.float64) * b_scale.to(torch.float64)
    dt = y_zero_point.dtype if y_zero_point is not None else a.dtype
    return _requantize(acc, s.reshape(-1, 1) if s.numel() > 1 and s.dim() == 1 else s, y_scale, y_zero_point, dt)


@infer("QLinearMatMul")
def qlinear_matmul_infer(node):
    (_, a), (_, b) = in_info(node, 0), in_info(node, 3)
    a2 = (1,) + tuple(a) if len(a) == 1 else tuple(a)
    b2 = tuple(b) + (1,) if len(b) == 1 else tuple(b)
    out = broadcast(a2[:-2], b2[:-2]) + (a2[-2], b2[-1])
    dt = node.inputs[7].dtype if has_input(node, 7) else node.inputs[0].dtype
    return [(dt, out)]


@reference("QLinearConv")
def qlinear_conv_ref(x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point,
                     B=None, **attrs):
    acc = _conv_integer(x, w, x_zero_point, w_zero_point, attrs)
    if B is not None:
        acc = acc + B.to(torch.float64).reshape((1, -1) + (1,) * (acc.dim() - 2))
    s = x_scale.to(torch.float64) * w_scale.to(torch.float64)
    if s.numel() > 1:
        s = s.reshape((1, -1) + (1,) * (acc.dim() - 2))
    dt = y_zero_point.dtype if y_zero_point is not None else x.dtype
    return _requantize(acc, s, y_scale, y_zero_point, dt)


@infer("QLinearConv")
def qlinear_conv_infer(node):
    class _View:  # conv_infer reads inputs 0/1 and attrs only
        inputs = [node.inputs[0], node.inputs[3]]
        attrs, name = node.attrs, node.name
    dt = node.inputs[7].dtype if has_input(node, 7) else node.inputs[0].dtype
    return [(dt, conv_infer(_View)[0][1])]
