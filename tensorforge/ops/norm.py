"""Normalizations: Batch/Layer/Instance/Group/RMS/Lp normalization, MVN, LRN."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .common import infer_same, norm_axis
from .registry import infer, reference


@reference("BatchNormalization")
def batchnorm_ref(x, scale, bias, mean, var, epsilon=1e-5, momentum=0.9, training_mode=0, spatial=1):
    shp = [1, -1] + [1] * (x.dim() - 2)
    if training_mode:  # batch statistics; also returns the updated running mean/var
        dims = [0] + list(range(2, x.dim()))
        bm, bv = x.mean(dims), x.var(dims, unbiased=False)
        y = (x - bm.reshape(shp)) * torch.rsqrt(bv.reshape(shp) + epsilon) * scale.reshape(shp) + bias.reshape(shp)
        return y, mean * momentum + bm * (1 - momentum), var * momentum + bv * (1 - momentum)
    inv = torch.rsqrt(var.reshape(shp) + epsilon)
    return (x - mean.reshape(shp)) * inv * scale.reshape(shp) + bias.reshape(shp)


@infer("BatchNormalization")
def batchnorm_infer(node):
    x, c = node.inputs[0], node.inputs[3]
    return [(x.dtype, x.shape)] + [(c.dtype, c.shape)] * (len(node.outputs) - 1)


@reference("LayerNormalization")
def layernorm_ref(x, scale, bias=None, axis=-1, epsilon=1e-5, stash_type=1):
    ax = axis % x.dim()
    dims = tuple(range(ax, x.dim()))
    xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    mean = xf.mean(dims, keepdim=True)
    var = ((xf - mean) ** 2).mean(dims, keepdim=True)
    inv = torch.rsqrt(var + epsilon)
    y = ((xf - mean) * inv).to(x.dtype) * scale
    y = y + bias if bias is not None else y
    return y, mean.float(), inv.float()  # Mean / InvStdDev outputs (stash type float32)


@infer("LayerNormalization")
def layernorm_infer(node):
    x = node.inputs[0]
    outs = [(x.dtype, x.shape)]
    ax = norm_axis(node.attrs.get("axis", -1), len(x.shape))
    stat = tuple(x.shape[:ax]) + (1,) * (len(x.shape) - ax)
    outs += [("float32", stat)] * (len(node.outputs) - 1)
    return outs


def _f32(x):
    """Statistics in fp32 for half types (as ORT and TensorRT do)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _channel_shape(x):
    return [1, -1] + [1] * (x.dim() - 2)


def _normalize(x, dims, eps):
    mean = x.mean(dims, keepdim=True)
    var = ((x - mean) ** 2).mean(dims, keepdim=True)
    return (x - mean) * torch.rsqrt(var + eps)


@reference("InstanceNormalization")
def instancenorm_ref(x, scale, bias, epsilon=1e-5):
    y = _normalize(_f32(x), tuple(range(2, x.dim())), epsilon)
    shp = _channel_shape(x)
    return (y * _f32(scale).reshape(shp) + _f32(bias).reshape(shp)).to(x.dtype)


@reference("GroupNormalization")
def groupnorm_ref(x, scale, bias, num_groups, epsilon=1e-5, stash_type=1, _opset=21):
    n, c = x.shape[0], x.shape[1]
    xg = _f32(x).reshape(n, num_groups, -1)
    y = _normalize(xg, (2,), epsilon).reshape(x.shape)
    scale, bias = _f32(scale), _f32(bias)
    if _opset < 21:  # opset 18: scale and bias are per group
        scale = scale.repeat_interleave(c // num_groups)
        bias = bias.repeat_interleave(c // num_groups)
    shp = _channel_shape(x)
    return (y * scale.reshape(shp) + bias.reshape(shp)).to(x.dtype)


@reference("LpNormalization")
def lpnorm_ref(x, axis=-1, p=2):
    ax = axis % x.dim()
    xf = _f32(x)
    n = xf.abs().sum(ax, keepdim=True) if p == 1 else torch.sqrt((xf * xf).sum(ax, keepdim=True))
    return (xf / torch.where(n == 0, torch.ones_like(n), n)).to(x.dtype)  # a zero vector stays zero


@reference("MeanVarianceNormalization")
def mvn_ref(x, axes=(0, 2, 3)):
    dims = tuple(sorted({a % x.dim() for a in axes}))
    xf = _f32(x)
    mean = xf.mean(dims, keepdim=True)
    var = ((xf - mean) ** 2).mean(dims, keepdim=True)  # centered: E[x^2]-E[x]^2 cancels badly
    return ((xf - mean) / (torch.sqrt(var) + 1e-9)).to(x.dtype)


@infer("InstanceNormalization", "GroupNormalization", "LpNormalization")
def norm_infer(node):
    return [(node.inputs[0].dtype, node.inputs[0].shape)]


@infer("MeanVarianceNormalization")
def mvn_infer(node):
    x = node.inputs[0]
    for a in node.attrs.get("axes", (0, 2, 3)):
        norm_axis(a, len(x.shape))
    return [(x.dtype, x.shape)]


@reference("RMSNormalization")
def rms_norm_ref(x, scale, axis=-1, epsilon=1e-5, stash_type=1):
    ax = axis % x.dim()
    xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    ms = (xf * xf).mean(tuple(range(ax, x.dim())), keepdim=True)
    return (xf * torch.rsqrt(ms + epsilon) * scale.to(xf.dtype)).to(x.dtype)


infer("RMSNormalization")(infer_same)


@reference("LRN")
def lrn_ref(x, size, alpha=0.0001, beta=0.75, bias=1.0):
    """y = x / (bias + alpha/size * sum of x^2 over a channel window)^beta."""
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    sq = F.pad((x.float() ** 2).movedim(1, -1), (lo, hi)).movedim(-1, 1)
    s = sq.unfold(1, size, 1).sum(-1)
    return (x.float() / (bias + alpha / size * s) ** beta).to(x.dtype)


infer("LRN")(infer_same)
