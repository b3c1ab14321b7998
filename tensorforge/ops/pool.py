"""Pooling: MaxPool, AveragePool, LpPool, their global forms, MaxUnpool."""
from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F

from ..errors import ShapeError
from ..ir.symbolic import norm
from .common import has_input, known_ints, tensor_arg
from .registry import infer, reference
from .spatial import pad_input, pool_out_dim, resolve_pads, spatial_attrs

FLOAT8 = (torch.float8_e4m3fn, torch.float8_e5m2)


def _pool_prep(x, kernel_shape, strides, pads, auto_pad, dilations, ceil_mode):
    n = len(kernel_shape)
    strides = strides or [1] * n
    dilations = dilations or [1] * n
    pads = resolve_pads(auto_pad, list(x.shape[2:]), kernel_shape, strides, dilations, pads)
    return strides, dilations, pads


@reference("MaxPool")
def maxpool_ref(x, kernel_shape, auto_pad="NOTSET", ceil_mode=0, dilations=None, pads=None,
                storage_order=0, strides=None, _n_outputs=2):
    """Returns (Y, Indices): indices flattened over the whole input tensor, as ONNX defines them
    (only Y when the node has one output: the hot path computes no indices)."""
    n = len(kernel_shape)
    strides, dilations, pads = _pool_prep(x, kernel_shape, strides, pads, auto_pad, dilations, ceil_mode)
    fn = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[n]
    if x.dtype in FLOAT8:  # torch pools no float8 (a MaxPool of an FP8 network, its Q moved above it):
        # every e4m3 / e5m2 value is exact in float16, and max only selects
        out = maxpool_ref(x.half(), kernel_shape, auto_pad, ceil_mode, dilations, pads, storage_order, strides,
                          _n_outputs)
        return out.to(x.dtype) if _n_outputs == 1 else (out[0].to(x.dtype), out[1])
    if _n_outputs == 1 and x.is_floating_point():
        if pads[:n] == pads[n:] and all(p <= k // 2 for p, k in zip(pads[:n], kernel_shape)):
            return fn(x, kernel_shape, strides, pads[:n], dilations, bool(ceil_mode))
        return fn(pad_input(x, pads, value=float("-inf")), kernel_shape, strides, 0, dilations, bool(ceil_mode))
    if not x.is_floating_point():  # torch pools floats only; int8/uint8 values are exact in float32
        y, i = maxpool_ref(x.float(), kernel_shape, auto_pad, ceil_mode, dilations, pads, storage_order, strides)
        return y.to(x.dtype), i
    if pads[:n] == pads[n:] and all(p <= k // 2 for p, k in zip(pads[:n], kernel_shape)):
        y, idx = fn(x, kernel_shape, strides, pads[:n], dilations, bool(ceil_mode), return_indices=True)
        return y, _onnx_pool_indices(idx, x.shape, None, [0] * n, storage_order)
    xp = pad_input(x, pads, value=float("-inf"))
    y, idx = fn(xp, kernel_shape, strides, 0, dilations, bool(ceil_mode), return_indices=True)
    return y, _onnx_pool_indices(idx, x.shape, xp.shape, pads[:n], storage_order)


def _onnx_pool_indices(idx, shape, padded_shape, pad_begin, storage_order):
    """torch's per-plane indices (maybe into a padded input) -> ONNX indices into the whole input."""
    sp = list(shape[2:])
    if padded_shape is not None or storage_order:
        psp = list(padded_shape[2:]) if padded_shape is not None else sp
        coords, rem = [], idx
        for d in reversed(psp):
            coords.append(rem % d)
            rem = rem // d
        coords = [c - b for c, b in zip(reversed(coords), pad_begin)]
        order = list(range(len(sp)))[::-1] if storage_order else list(range(len(sp)))
        idx = torch.zeros_like(idx)
        for k in order:
            idx = idx * sp[k] + coords[k]
    plane = int(math.prod(sp))
    base = torch.arange(shape[0] * shape[1], device=idx.device, dtype=torch.int64) * plane
    return idx + base.reshape((shape[0], shape[1]) + (1,) * len(sp))


@reference("AveragePool")
def avgpool_ref(x, kernel_shape, auto_pad="NOTSET", ceil_mode=0, count_include_pad=0, dilations=None,
                pads=None, strides=None):
    n = len(kernel_shape)
    strides, dilations, pads = _pool_prep(x, kernel_shape, strides, pads, auto_pad, dilations, ceil_mode)
    fn = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[n]
    if any(d != 1 for d in dilations):
        return _avgpool_dilated(x, kernel_shape, strides, dilations, pads, ceil_mode, count_include_pad)
    if pads[:n] == pads[n:] and all(p <= k // 2 for p, k in zip(pads[:n], kernel_shape)):
        return fn(x, kernel_shape, strides, pads[:n], bool(ceil_mode), bool(count_include_pad))
    xp = pad_input(x, pads)
    s = fn(xp, kernel_shape, strides, 0, bool(ceil_mode), True)
    if count_include_pad:
        return s
    ones = pad_input(torch.ones_like(x[:1, :1]), pads)
    cnt = fn(ones, kernel_shape, strides, 0, bool(ceil_mode), True)
    return s / cnt


def _window_sum(xp, k, strides, dil, outs):
    """Sum over each dilated window as prod(k) strided-slice adds (fp32 or wider accumulation): exact
    where a ones-kernel convolution would run in TF32 on CUDA."""
    acc_t = torch.promote_types(xp.dtype, torch.float32)
    total = None
    for offs in itertools.product(*[range(kk) for kk in k]):
        sl = tuple(slice(o * d, o * d + (m - 1) * s + 1, s) for o, d, m, s in zip(offs, dil, outs, strides))
        v = xp[(Ellipsis,) + sl].to(acc_t)
        total = v if total is None else total + v
    return total


def _avgpool_dilated(x, k, strides, dil, pads, ceil_mode, count_include_pad):
    """Dilated average pooling: window sums of the value and of a count mask."""
    n = len(k)
    outs = [pool_out_dim(x.shape[2 + i], k[i], strides[i], dil[i], pads[i], pads[i + n], ceil_mode)
            for i in range(n)]
    extra = [max(0, (outs[i] - 1) * strides[i] + (k[i] - 1) * dil[i] + 1 - (x.shape[2 + i] + pads[i] + pads[i + n]))
             for i in range(n)]
    full = list(pads[:n]) + [pads[n + i] + extra[i] for i in range(n)]
    total = _window_sum(pad_input(x, full), k, strides, dil, outs)
    mask = torch.ones((1, 1) + tuple(x.shape[2:]), dtype=torch.float32, device=x.device)
    if count_include_pad:
        mask = pad_input(mask, list(pads), value=1.0)
        mask = pad_input(mask, [0] * n + extra)
    else:
        mask = pad_input(mask, full)
    cnt = _window_sum(mask, k, strides, dil, outs)
    return (total / cnt).to(x.dtype)


@reference("LpPool")
def lppool_ref(x, kernel_shape, auto_pad="NOTSET", ceil_mode=0, dilations=None, p=2, pads=None,
               strides=None, count_include_pad=0):
    """(sum of |x|^p over the window)^(1/p); padding contributes zeros."""
    avg = avgpool_ref(x.abs() ** p, kernel_shape, auto_pad, ceil_mode, 1, dilations, pads, strides)
    return (avg * math.prod(kernel_shape)) ** (1.0 / p)


@infer("MaxPool", "AveragePool", "LpPool")
def pool_infer(node):
    x = node.inputs[0]
    k = node.attrs["kernel_shape"]
    n = len(k)
    strides, dil, auto_pad, pads = spatial_attrs(node, x.shape, k)
    ceil = node.attrs.get("ceil_mode", 0)
    sp = tuple(pool_out_dim(x.shape[2 + i], k[i], strides[i], dil[i], pads[i], pads[i + n], ceil, auto_pad)
               for i in range(n))
    outs = [(x.dtype, tuple(x.shape[:2]) + sp)]
    if len(node.outputs) > 1:
        outs.append(("int64", outs[0][1]))
    return outs


@reference("GlobalAveragePool")
def gap_ref(x):
    return x.mean(dim=tuple(range(2, x.dim())), keepdim=True)


@reference("GlobalMaxPool")
def gmp_ref(x):
    if x.dtype in FLOAT8:
        return gmp_ref(x.half()).to(x.dtype)
    return x.amax(dim=tuple(range(2, x.dim())), keepdim=True)


@reference("GlobalLpPool")
def global_lppool_ref(x, p=2):
    return (x.abs() ** p).sum(tuple(range(2, x.dim())), keepdim=True) ** (1.0 / p)


@infer("GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool")
def global_pool_infer(node):
    x = node.inputs[0]
    return [(x.dtype, tuple(x.shape[:2]) + (1,) * (len(x.shape) - 2))]


def _unpool_shape(xs, kernel_shape, pads, strides):
    n = len(kernel_shape)
    pads, strides = pads or [0] * (2 * n), strides or [1] * n
    return [norm((xs[2 + i] - 1) * strides[i] - pads[i] - pads[i + n] + kernel_shape[i]) for i in range(n)]


@reference("MaxUnpool", host_inputs=(2,))
def max_unpool_ref(x, indices, output_shape=None, kernel_shape=None, pads=None, strides=None):
    sp = _unpool_shape(list(x.shape), kernel_shape, pads, strides)
    inferred = list(x.shape[:2]) + sp
    y = torch.zeros(math.prod(inferred), dtype=x.dtype, device=x.device)
    y.index_copy_(0, indices.reshape(-1).to(torch.int64), x.reshape(-1))  # scatter (last write wins)
    y = y.reshape(inferred)
    if output_shape is None:
        return y
    out = tensor_arg(output_shape)
    return F.pad(y, sum(([0, o - i] for o, i in zip(reversed(out[2:]), reversed(inferred[2:]))), []))


@infer("MaxUnpool")
def max_unpool_infer(node):
    x = node.inputs[0]
    if has_input(node, 2):
        out = known_ints(node.inputs[2])
        if out is None:
            raise ShapeError(f"MaxUnpool '{node.name}': output_shape is data-dependent (not supported)")
        return [(x.dtype, tuple(out))]
    a = node.attrs
    return [(x.dtype, tuple(x.shape[:2]) + tuple(_unpool_shape(list(x.shape), a["kernel_shape"], a.get("pads"),
                                                               a.get("strides"))))]
