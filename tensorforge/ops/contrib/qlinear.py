"""com.microsoft QLinear* ops (Add, Mul, Sigmoid, LeakyRelu, Softmax, GlobalAveragePool, AveragePool, Concat,
Conv) and QGemm: dequantize, compute in float32, requantize (round half to even, saturate)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ...ir.symbolic import broadcast, norm
from ..common import in_info, norm_axis
from ..pool import avgpool_ref, pool_infer
from ..quant import qlinear_conv_infer, qlinear_conv_ref
from ..registry import infer, reference
from . import MS


def deq(x, scale, zp):
    """(x - zp) * scale in float32 (per-tensor parameters)."""
    v = x.to(torch.float32)
    if zp is not None:
        v = v - zp.to(torch.float32)
    return v * scale.to(torch.float32)


def req(y, scale, zp, dt):
    """round(y / scale) + zp saturated to dt (the zero point's type, else dt)."""
    dt = zp.dtype if zp is not None else dt
    q = torch.round(y / scale.to(torch.float32))
    if zp is not None:
        q = q + zp.to(torch.float32)
    i = torch.iinfo(dt)
    return q.clamp(i.min, i.max).to(dt)


@reference("QLinearAdd", domain=MS)
def qlinear_add_ref(a, a_scale, a_zp, b, b_scale, b_zp, c_scale, c_zp=None):
    return req(deq(a, a_scale, a_zp) + deq(b, b_scale, b_zp), c_scale, c_zp, a.dtype)


@reference("QLinearMul", domain=MS)
def qlinear_mul_ref(a, a_scale, a_zp, b, b_scale, b_zp, c_scale, c_zp=None):
    return req(deq(a, a_scale, a_zp) * deq(b, b_scale, b_zp), c_scale, c_zp, a.dtype)


@infer("QLinearAdd", "QLinearMul", domain=MS)
def qlinear_binary_infer(node):
    (dt, a), (_, b) = in_info(node, 0), in_info(node, 3)
    return [(dt, broadcast(a, b))]


@reference("QLinearSigmoid", domain=MS)
def qlinear_sigmoid_ref(x, x_scale, x_zp, y_scale, y_zp=None):
    return req(torch.sigmoid(deq(x, x_scale, x_zp)), y_scale, y_zp, x.dtype)


@reference("QLinearLeakyRelu", domain=MS)
def qlinear_leaky_relu_ref(x, x_scale, x_zp, y_scale, y_zp=None, alpha=0.01):
    return req(F.leaky_relu(deq(x, x_scale, x_zp), alpha), y_scale, y_zp, x.dtype)


@reference("QLinearGlobalAveragePool", domain=MS)
def qlinear_gap_ref(x, x_scale, x_zp, y_scale, y_zp=None, channels_last=0):
    dims = tuple(range(1, x.dim() - 1)) if channels_last else tuple(range(2, x.dim()))
    return req(deq(x, x_scale, x_zp).mean(dims, keepdim=True), y_scale, y_zp, x.dtype)


@reference("QLinearSoftmax", domain=MS)
def qlinear_softmax_ref(x, x_scale, x_zp, y_scale, y_zp=None, axis=-1, opset=13):
    """Softmax over `axis` (opset >= 13) or over the flattened axes from `axis` on (older opsets)."""
    d = deq(x, x_scale, x_zp)
    ax = axis % x.dim()
    if opset < 13:
        y = torch.softmax(d.reshape(*d.shape[:ax], -1), -1).reshape(d.shape)
    else:
        y = torch.softmax(d, ax)
    return req(y, y_scale, y_zp, x.dtype)


infer("QLinearSigmoid", "QLinearLeakyRelu", "QLinearSoftmax", domain=MS)(lambda node: [in_info(node, 0)])


@infer("QLinearGlobalAveragePool", domain=MS)
def qlinear_gap_infer(node):
    dt, s = in_info(node, 0)
    if node.attrs.get("channels_last", 0):
        return [(dt, (s[0],) + (1,) * (len(s) - 2) + (s[-1],))]
    return [(dt, tuple(s[:2]) + (1,) * (len(s) - 2))]


@reference("QLinearConcat", domain=MS)
def qlinear_concat_ref(y_scale, y_zp, *xs, axis):
    parts = [deq(xs[i], xs[i + 1], xs[i + 2]) for i in range(0, len(xs), 3)]
    return req(torch.cat(parts, axis), y_scale, y_zp, xs[0].dtype)


@infer("QLinearConcat", domain=MS)
def qlinear_concat_infer(node):
    xs = [node.inputs[i] for i in range(2, len(node.inputs), 3)]
    ax = norm_axis(node.attrs["axis"], len(xs[0].shape))
    total = 0
    for v in xs:
        total = norm(total + v.shape[ax])
    s = list(xs[0].shape)
    s[ax] = total
    dt = node.inputs[1].dtype if node.inputs[1] is not None else xs[0].dtype
    return [(dt, tuple(s))]


def _nchw(x, channels_last):
    return x.permute(0, x.dim() - 1, *range(1, x.dim() - 1)) if channels_last else x


def _nhwc(x, channels_last):
    return x.permute(0, *range(2, x.dim()), 1) if channels_last else x


@reference("QLinearAveragePool", domain=MS)
def qlinear_avgpool_ref(x, x_scale, x_zp, y_scale, y_zp=None, channels_last=0, **attrs):
    y = avgpool_ref(_nchw(deq(x, x_scale, x_zp), channels_last), **attrs)
    return req(_nhwc(y, channels_last), y_scale, y_zp, x.dtype)


@infer("QLinearAveragePool", domain=MS)
def qlinear_avgpool_infer(node):
    cl = node.attrs.get("channels_last", 0)

    class _View:  # pool_infer on the channels-first view of x
        class _V:
            dtype = node.inputs[0].dtype
            s = tuple(node.inputs[0].shape)
            shape = (s[0], s[-1]) + s[1:-1] if cl else s
        inputs = [_V]
        attrs = {k: v for k, v in node.attrs.items() if k != "channels_last"}
        name, outputs = node.name, node.outputs[:1]
    dt, s = pool_infer(_View)[0]
    return [(dt, (s[0],) + tuple(s[2:]) + (s[1],) if cl else s)]


@reference("QGemm", domain=MS)
def qgemm_ref(a, a_scale, a_zp, b, b_scale, b_zp, c=None, y_scale=None, y_zp=None, alpha=1.0, transA=0,
              transB=0):
    """alpha·(a - a_zp)(b - b_zp)·a_scale·b_scale (+ c, int32 at scale a_scale·b_scale); requantized
    when y_scale is given, else float."""
    av = a.to(torch.float64) - (a_zp.to(torch.float64) if a_zp is not None else 0)
    bv = b.to(torch.float64) - (b_zp.to(torch.float64).reshape(-1, 1) if b_zp is not None and transB
                                else (b_zp.to(torch.float64) if b_zp is not None else 0))
    acc = torch.matmul(av.t() if transA else av, bv.t() if transB else bv)
    if c is not None:
        acc = acc + c.to(torch.float64)
    scale = (a_scale.to(torch.float64) * b_scale.to(torch.float64)).reshape(-1)
    y = (alpha * acc * (scale if scale.numel() > 1 else scale[0])).to(torch.float32)
    return req(y, y_scale, y_zp, a.dtype) if y_scale is not None else y


@infer("QGemm", domain=MS)
def qgemm_infer(node):
    (_, a), (_, b) = in_info(node, 0), in_info(node, 3)
    m = a[1] if node.attrs.get("transA", 0) else a[0]
    n = b[0] if node.attrs.get("transB", 0) else b[1]
    if len(node.inputs) > 7 and node.inputs[7] is not None:
        dt = node.inputs[8].dtype if len(node.inputs) > 8 and node.inputs[8] is not None else node.inputs[0].dtype
    else:
        dt = "float32"
    return [(dt, (m, n))]


@reference("QLinearConv", domain=MS)
def ms_qlinear_conv_ref(x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, B=None, channels_last=0, **attrs):
    """ONNX's QLinearConv, with x and y channels-last when channels_last=1 (w stays (M, C/group, k...))."""
    y = qlinear_conv_ref(_nchw(x, channels_last), x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, B, **attrs)
    return _nhwc(y, channels_last)


@infer("QLinearConv", domain=MS)
def ms_qlinear_conv_infer(node):
    cl = node.attrs.get("channels_last", 0)
    if not cl:
        return qlinear_conv_infer(node)

    class _V:
        dtype = node.inputs[0].dtype
        s = tuple(node.inputs[0].shape)
        shape = (s[0], s[-1]) + s[1:-1]

    class _View:  # qlinear_conv_infer on the channels-first view of x
        inputs = [_V] + list(node.inputs[1:])
        attrs = {k: v for k, v in node.attrs.items() if k != "channels_last"}
        name, outputs = node.name, node.outputs
    dt, s = qlinear_conv_infer(_View)[0]
    return [(dt, (s[0],) + tuple(s[2:]) + (s[1],))]
