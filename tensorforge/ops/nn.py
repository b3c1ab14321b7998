"""Neural-network ops: Conv, MatMul, Gemm, BatchNormalization, pooling, Softmax, LayerNormalization."""
from __future__ import annotations

import itertools
import math

from ..ir.lazy import sympy
import torch
import torch.nn.functional as F

from ..errors import ShapeError
from ..ir.symbolic import broadcast, norm
from .common import has_input, infer_same, norm_axis
from .registry import infer, reference


# ---- padding helpers shared by Conv and pooling --------------------------------------------
def resolve_pads(auto_pad, in_spatial, kernel, strides, dilations, pads, ceil_mode=0):
    """Explicit [begin..., end...] pads for ONNX auto_pad modes (ints only)."""
    n = len(kernel)
    if auto_pad in (None, "", "NOTSET"):
        return list(pads) if pads is not None else [0] * (2 * n)
    if auto_pad == "VALID":
        return [0] * (2 * n)
    begin, end = [], []
    for i in range(n):
        out = -(-in_spatial[i] // strides[i])
        total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - in_spatial[i])
        small, big = total // 2, total - total // 2
        begin.append(small if auto_pad == "SAME_UPPER" else big)
        end.append(big if auto_pad == "SAME_UPPER" else small)
    return begin + end


def pool_out_dim(inp, k, s, d, pb, pe, ceil_mode=0, auto_pad="NOTSET"):
    """Output length of one spatial axis of a conv/pool (symbolic-safe)."""
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        return norm(sympy.ceiling(sympy.sympify(inp) / s))
    eff = (k - 1) * d + 1
    num = sympy.sympify(inp) + pb + pe - eff
    out = (sympy.ceiling(num / s) if ceil_mode else sympy.floor(num / s)) + 1
    if ceil_mode and isinstance(inp, int):
        o = int(out)
        if (o - 1) * s >= inp + pb:  # last window must start inside the input (+ begin pad)
            o -= 1
        return o
    return norm(out)


def _spatial_attrs(node, x_shape, kshape):
    n = len(kshape)
    strides = node.attrs.get("strides", [1] * n)
    dil = node.attrs.get("dilations", [1] * n)
    auto_pad = node.attrs.get("auto_pad", "NOTSET")
    pads = node.attrs.get("pads", [0] * (2 * n))
    return strides, dil, auto_pad, pads


# ---- Conv / ConvTranspose -----------------------------------------------------------------
_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def pad_input(x, pads, value=0.0):
    """Apply ONNX-style [begin..., end...] pads to the trailing spatial dims of x."""
    n = len(pads) // 2
    tp = []
    for i in reversed(range(n)):
        tp += [pads[i], pads[i + n]]
    return F.pad(x, tp, value=value) if any(tp) else x


@reference("Conv")
def conv_ref(x, w, b=None, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None,
             pads=None, strides=None):
    n = w.dim() - 2
    strides = strides or [1] * n
    dilations = dilations or [1] * n
    pads = resolve_pads(auto_pad, list(x.shape[2:]), list(w.shape[2:]), strides, dilations, pads)
    if pads[:n] == pads[n:]:
        return _CONV[n](x, w, b, strides, pads[:n], dilations, group)
    return _CONV[n](pad_input(x, pads), w, b, strides, 0, dilations, group)


@infer("Conv")
def conv_infer(node):
    x, w = node.inputs[0], node.inputs[1]
    kshape = node.attrs.get("kernel_shape", list(w.shape[2:]))
    strides, dil, auto_pad, pads = _spatial_attrs(node, x.shape, kshape)
    n = len(kshape)
    if x.shape[1] != norm(w.shape[1] * node.attrs.get("group", 1)) and isinstance(x.shape[1], int):
        raise ShapeError(f"Conv '{node.name}': input has {x.shape[1]} channels, weight expects "
                         f"{w.shape[1] * node.attrs.get('group', 1)}")
    sp = [pool_out_dim(x.shape[2 + i], kshape[i], strides[i], dil[i], pads[i], pads[i + n],
                       0, auto_pad) for i in range(n)]
    return [(x.dtype, (x.shape[0], w.shape[0], *sp))]


@reference("ConvTranspose")
def conv_transpose_ref(x, w, b=None, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None,
                       output_padding=None, output_shape=None, pads=None, strides=None):
    n = w.dim() - 2
    strides = strides or [1] * n
    dilations = dilations or [1] * n
    output_padding = output_padding or [0] * n
    k = list(w.shape[2:])
    pads = _convt_pads(list(x.shape[2:]), k, strides, dilations, output_padding, output_shape,
                       pads, auto_pad)
    fn = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[n]
    grow = [max(0, -p) for p in pads]  # negative pads (output_shape past the full extent): zeros
    pads = [max(0, p) for p in pads]
    sym = [min(pads[i], pads[i + n]) for i in range(n)]
    y = fn(x, w, None if any(grow) else b, strides, sym, output_padding, group, dilations)
    extra = [pads[i] - sym[i] for i in range(n)] + [pads[i + n] - sym[i] for i in range(n)]
    if any(extra):  # asymmetric pads: crop the remainder
        sl = [slice(None), slice(None)] + [slice(extra[i], y.shape[2 + i] - extra[i + n]) for i in range(n)]
        y = y[tuple(sl)]
    if any(grow):
        y = pad_input(y, grow)
        y = y + b.reshape((1, -1) + (1,) * n) if b is not None else y
    return y


def _convt_pads(in_sp, k, s, d, op, output_shape, pads, auto_pad):
    n = len(k)
    if output_shape is not None:
        out = list(output_shape)[-n:]
        total = [s[i] * (in_sp[i] - 1) + op[i] + ((k[i] - 1) * d[i] + 1) - out[i] for i in range(n)]
        if any(t < 0 for t in total):  # output larger than the full extent: extend at the end
            return [max(t, 0) // 2 for t in total] + [t - max(t, 0) // 2 if t >= 0 else t for t in total]
        if auto_pad == "SAME_UPPER" or auto_pad in ("NOTSET", "", None):
            return [t // 2 for t in total] + [t - t // 2 for t in total]
        return [t - t // 2 for t in total] + [t // 2 for t in total]
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        total = [max(0, s[i] * (in_sp[i] - 1) + op[i] + ((k[i] - 1) * d[i] + 1) - in_sp[i] * s[i])
                 for i in range(n)]
        if auto_pad == "SAME_UPPER":
            return [t // 2 for t in total] + [t - t // 2 for t in total]
        return [t - t // 2 for t in total] + [t // 2 for t in total]
    return list(pads) if pads is not None else [0] * (2 * n)


@infer("ConvTranspose")
def conv_transpose_infer(node):
    x, w = node.inputs[0], node.inputs[1]
    n = len(w.shape) - 2
    g = node.attrs.get("group", 1)
    a = node.attrs
    s, d = a.get("strides", [1] * n), a.get("dilations", [1] * n)
    op = a.get("output_padding", [0] * n)
    if "output_shape" in a:
        sp = list(a["output_shape"])[-n:]
    else:
        k = list(w.shape[2:])
        if a.get("auto_pad", "NOTSET") in ("SAME_UPPER", "SAME_LOWER"):
            sp = [norm(x.shape[2 + i] * s[i]) for i in range(n)]
        else:
            p = a.get("pads", [0] * (2 * n))
            sp = [norm(s[i] * (x.shape[2 + i] - 1) + op[i] + ((k[i] - 1) * d[i] + 1) - p[i] - p[i + n])
                  for i in range(n)]
    return [(x.dtype, (x.shape[0], norm(w.shape[1] * g), *sp))]


# ---- MatMul / Gemm ------------------------------------------------------------------------
@reference("MatMul")
def matmul_ref(a, b):
    return torch.matmul(a, b)


@infer("MatMul")
def matmul_infer(node):
    a, b = node.inputs[0].shape, node.inputs[1].shape
    if len(a) == 1 and len(b) == 1:
        return [(node.inputs[0].dtype, ())]
    a2 = (1,) + tuple(a) if len(a) == 1 else tuple(a)
    b2 = tuple(b) + (1,) if len(b) == 1 else tuple(b)
    if isinstance(a2[-1], int) and isinstance(b2[-2], int) and a2[-1] != b2[-2]:
        raise ShapeError(f"MatMul '{node.name}': inner dims differ ({list(a)} x {list(b)})")
    batch = broadcast(a2[:-2], b2[:-2])
    out = batch + (a2[-2], b2[-1])
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return [(node.inputs[0].dtype, tuple(out))]


@reference("Gemm")
def gemm_ref(a, b, c=None, alpha=1.0, beta=1.0, transA=0, transB=0):
    a = a.t() if transA else a
    b = b.t() if transB else b
    y = torch.matmul(a, b)
    if alpha != 1.0:
        y = y * alpha
    if c is not None:
        y = y + (c * beta if beta != 1.0 else c)
    return y


@infer("Gemm")
def gemm_infer(node):
    a, b = node.inputs[0].shape, node.inputs[1].shape
    m = a[1] if node.attrs.get("transA", 0) else a[0]
    n = b[0] if node.attrs.get("transB", 0) else b[1]
    return [(node.inputs[0].dtype, (m, n))]


# ---- normalization ------------------------------------------------------------------------
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


# ---- pooling ------------------------------------------------------------------------------
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


@infer("MaxPool", "AveragePool", "LpPool")
def pool_infer(node):
    x = node.inputs[0]
    k = node.attrs["kernel_shape"]
    n = len(k)
    strides, dil, auto_pad, pads = _spatial_attrs(node, x.shape, k)
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
    return x.amax(dim=tuple(range(2, x.dim())), keepdim=True)


@infer("GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool")
def global_pool_infer(node):
    x = node.inputs[0]
    return [(x.dtype, tuple(x.shape[:2]) + (1,) * (len(x.shape) - 2))]


# ---- softmax ------------------------------------------------------------------------------
def _softmax_like(fn):
    def ref(x, axis=None, _opset=13):
        if _opset < 13:  # old semantics: flatten to 2D at axis (default axis 1)
            axis = 1 if axis is None else axis
            ax = axis % x.dim() if x.dim() else 0
            shp = x.shape
            return fn(x.reshape(int(math.prod(shp[:ax])), -1), -1).reshape(shp)
        return fn(x, -1 if axis is None else axis)
    return ref


reference("Softmax")(_softmax_like(lambda x, a: torch.softmax(x, a)))
reference("LogSoftmax")(_softmax_like(lambda x, a: torch.log_softmax(x, a)))
reference("Hardmax")(_softmax_like(
    lambda x, a: F.one_hot(x.argmax(a), x.shape[a]).movedim(-1, a % x.dim()).to(x.dtype)))
infer("Softmax", "LogSoftmax", "Hardmax")(infer_same)

_ = has_input
