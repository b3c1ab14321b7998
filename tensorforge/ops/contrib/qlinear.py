"""com.microsoft QLinear* ops: dequantize, compute in float32, requantize (round half to even, saturate)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ...ir.symbolic import broadcast, norm
from ..common import in_info, norm_axis
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


infer("QLinearSigmoid", "QLinearLeakyRelu", domain=MS)(lambda node: [in_info(node, 0)])


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
