"""Normalizations: InstanceNormalization, GroupNormalization, LpNormalization,
MeanVarianceNormalization (Batch/LayerNormalization live in nn.py)."""
from __future__ import annotations

import torch

from .common import norm_axis
from .registry import infer, reference


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
    return (xf / n).to(x.dtype)


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
