"""BitCast, window functions, CenterCropPad, Col2Im, AffineGrid, GridSample, MaxUnpool,
TensorScatter and the random generators (Bernoulli, RandomUniform/Normal(+Like))."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .. import dtypes
from ..errors import ShapeError
from ..ir.symbolic import norm
from .common import has_input, in_info, infer_same, known_ints, norm_axis, tensor_arg
from .registry import infer, reference


# ---- BitCast ---------------------------------------------------------------------------------------
@reference("BitCast")
def bitcast_ref(x, to):
    dt = dtypes.to_torch(dtypes.from_onnx(to))
    if x.dtype == torch.bool or dt == torch.bool:  # torch cannot view bool: go through uint8
        return x.to(torch.uint8).to(dt) if dt == torch.bool else x.view(torch.uint8).view(dt)
    return x.view(dt)


@infer("BitCast")
def bitcast_infer(node):
    dt = dtypes.from_onnx(node.attrs["to"])
    if dtypes.itemsize(dt) != dtypes.itemsize(node.inputs[0].dtype):
        raise ShapeError(f"BitCast '{node.name}': {node.inputs[0].dtype} and {dt} differ in width")
    return [(dt, node.inputs[0].shape)]


# ---- window functions ------------------------------------------------------------------------------
def _window(kind):
    def ref(size, output_datatype=1, periodic=1, _device=None):
        n = int(size.reshape(-1)[0])
        i = torch.arange(n, dtype=torch.float64, device=_device)
        d = n if periodic else n - 1
        if kind == "hann":
            w = torch.sin(i * math.pi / d) ** 2
        elif kind == "hamming":
            a = 25.0 / 46.0
            w = a - torch.cos(i * math.pi * 2 / d) * (1 - a)
        else:
            w = 0.42 - 0.5 * torch.cos(i * math.pi * 2 / d) + 0.08 * torch.cos(i * math.pi * 4 / d)
        return w.to(dtypes.to_torch(dtypes.from_onnx(output_datatype)))
    return ref


for _op, _kind in (("HannWindow", "hann"), ("HammingWindow", "hamming"), ("BlackmanWindow", "blackman")):
    reference(_op, host_inputs=(0,))(_window(_kind))


@infer("HannWindow", "HammingWindow", "BlackmanWindow")
def window_infer(node):
    n = known_ints(node.inputs[0])
    if n is None:
        raise ShapeError(f"{node.op} '{node.name}': size is data-dependent (not supported)")
    return [(dtypes.from_onnx(node.attrs.get("output_datatype", 1)), (n[0],))]


# ---- CenterCropPad -----------------------------------------------------------------------------------
@reference("CenterCropPad", host_inputs=(1,))
def center_crop_pad_ref(x, shape, axes=None):
    r = x.dim()
    axes = [norm_axis(a, r) for a in axes] if axes else list(range(r))
    out = x
    for a, s in zip(axes, tensor_arg(shape)):
        d = out.shape[a]
        if s < d:
            out = out.narrow(a, (d - s) // 2, s)
        elif s > d:
            lo = (s - d) // 2
            pad = [0, 0] * (r - 1 - a) + [lo, s - d - lo]
            out = F.pad(out, pad)
    return out


@infer("CenterCropPad")
def center_crop_pad_infer(node):
    x = node.inputs[0]
    r = len(x.shape)
    shape = known_ints(node.inputs[1])
    if shape is None:
        raise ShapeError(f"CenterCropPad '{node.name}': shape is data-dependent (not supported)")
    out = list(x.shape)
    axes = node.attrs.get("axes") or list(range(r))
    for a, s in zip(axes, shape):
        out[norm_axis(a, r)] = s
    return [(x.dtype, tuple(out))]


# ---- Col2Im -------------------------------------------------------------------------------------------
@reference("Col2Im", host_inputs=(1, 2))
def col2im_ref(x, image_shape, block_shape, dilations=None, pads=None, strides=None):
    """Sum each column of kernel patches back into the (padded) image, N-D."""
    img, k = tensor_arg(image_shape), tensor_arg(block_shape)
    n = len(img)
    dil, st = dilations or [1] * n, strides or [1] * n
    pads = pads or [0] * (2 * n)
    padded = [img[i] + pads[i] + pads[i + n] for i in range(n)]
    blocks = [(padded[i] - (dil[i] * (k[i] - 1) + 1)) // st[i] + 1 for i in range(n)]
    dev = x.device  # index tables built on the device: no host copy
    kidx = torch.cartesian_prod(*[torch.arange(v, device=dev) for v in k]).reshape(-1, n)
    bidx = torch.cartesian_prod(*[torch.arange(v, device=dev) for v in blocks]).reshape(-1, n)
    flat = torch.zeros((kidx.shape[0], bidx.shape[0]), dtype=torch.int64, device=dev)
    for i in range(n):  # (K, L) linear positions in the padded image
        flat = flat * padded[i] + kidx[:, None, i] * dil[i] + bidx[None, :, i] * st[i]
    b, ck, _ = x.shape
    c = ck // len(kidx)
    out = torch.zeros((b, c, math.prod(padded)), dtype=x.dtype, device=x.device)
    src = x.reshape(b, c, -1)
    out.index_add_(2, flat.reshape(-1), src)
    out = out.reshape((b, c) + tuple(padded))
    for i in range(n):
        out = out.narrow(2 + i, pads[i], img[i])
    return out


@infer("Col2Im")
def col2im_infer(node):
    x = node.inputs[0]
    img, k = known_ints(node.inputs[1]), known_ints(node.inputs[2])
    if img is None or k is None:
        raise ShapeError(f"Col2Im '{node.name}': image/block shapes are data-dependent (not supported)")
    a, n = node.attrs, len(img)
    pads, st, dil = a.get("pads", [0] * 2 * n), a.get("strides", [1] * n), a.get("dilations", [1] * n)
    blocks = math.prod((img[i] + pads[i] + pads[i + n] - dil[i] * (k[i] - 1) - 1) // st[i] + 1 for i in range(n))
    if isinstance(x.shape[2], int) and x.shape[2] != blocks:
        raise ShapeError(f"Col2Im '{node.name}': input has {x.shape[2]} blocks, image/block shapes give {blocks}")
    kk = math.prod(k)
    c = x.shape[1] // kk if isinstance(x.shape[1], int) else norm(x.shape[1] / kk)
    return [(x.dtype, (x.shape[0], c) + tuple(img))]


# ---- AffineGrid / GridSample --------------------------------------------------------------------------
@reference("AffineGrid", host_inputs=(1,))
def affine_grid_ref(theta, size, align_corners=0):
    return F.affine_grid(theta, tensor_arg(size), align_corners=bool(align_corners))


@infer("AffineGrid")
def affine_grid_infer(node):
    size = known_ints(node.inputs[1])
    if size is None:
        raise ShapeError(f"AffineGrid '{node.name}': size is data-dependent (not supported)")
    return [(node.inputs[0].dtype, (size[0],) + tuple(size[2:]) + (len(size) - 2,))]


_GS_MODES = {"linear": "bilinear", "bilinear": "bilinear", "nearest": "nearest", "cubic": "bicubic",
             "bicubic": "bicubic"}


@reference("GridSample")
def grid_sample_ref(x, grid, align_corners=0, mode="linear", padding_mode="zeros"):
    m = _GS_MODES[mode]
    if m == "bicubic" and x.dim() != 4:
        raise ShapeError("GridSample: cubic mode is supported for 4-D inputs only")
    y = F.grid_sample(x.float() if x.dtype != torch.float64 else x, grid.to(x.dtype if x.dtype == torch.float64 else torch.float32),
                      mode=m, padding_mode=padding_mode, align_corners=bool(align_corners))
    return y.to(x.dtype)


@infer("GridSample")
def grid_sample_infer(node):
    (dt, xs), (_, gs) = in_info(node, 0), in_info(node, 1)
    return [(dt, (xs[0], xs[1]) + tuple(gs[1:-1]))]


# ---- MaxUnpool ---------------------------------------------------------------------------------------
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


# ---- TensorScatter (KV-cache write) -----------------------------------------------------------------
@reference("TensorScatter")
def tensor_scatter_ref(past, update, write_indices=None, axis=-2, mode="linear"):
    ax = norm_axis(axis, past.dim())
    b, cap, seq = past.shape[0], past.shape[ax], update.shape[ax]
    start = write_indices.to(torch.int64) if write_indices is not None else \
        torch.zeros(b, dtype=torch.int64, device=past.device)
    pos = start.reshape(-1, 1) + torch.arange(seq, device=past.device).reshape(1, -1)  # (B, seq)
    if mode == "circular":
        pos = pos % cap
    shp = [b] + [1] * (past.dim() - 1)
    shp[ax] = seq
    idx = pos.reshape(shp).expand(update.shape)
    return past.scatter(ax, idx, update)


infer("TensorScatter")(infer_same)


# ---- random generators (outputs are random: never constant-folded, never compared) ------------------
def _rand_dtype(dtype, like=None):
    if dtype is not None:
        return dtypes.to_torch(dtypes.from_onnx(dtype))
    return like.dtype if like is not None else torch.float32


@reference("RandomUniform", "RandomUniformLike", deterministic=False)
def random_uniform_ref(like=None, dtype=None, high=1.0, low=0.0, seed=None, shape=None, _device=None):
    shp = list(shape) if like is None else list(like.shape)
    dev = like.device if like is not None else _device
    return (torch.rand(shp, dtype=torch.float64, device=dev) * (high - low) + low).to(_rand_dtype(dtype, like))


@reference("RandomNormal", "RandomNormalLike", deterministic=False)
def random_normal_ref(like=None, dtype=None, mean=0.0, scale=1.0, seed=None, shape=None, _device=None):
    shp = list(shape) if like is None else list(like.shape)
    dev = like.device if like is not None else _device
    return (torch.randn(shp, dtype=torch.float64, device=dev) * scale + mean).to(_rand_dtype(dtype, like))


@reference("Bernoulli", deterministic=False)
def bernoulli_ref(x, dtype=None, seed=None):
    return torch.bernoulli(x.to(torch.float64)).to(_rand_dtype(dtype, x))


@infer("RandomUniform", "RandomNormal")
def random_infer(node):
    return [(dtypes.from_onnx(node.attrs.get("dtype", 1)), tuple(node.attrs["shape"]))]


@infer("RandomUniformLike", "RandomNormalLike", "Bernoulli")
def random_like_infer(node):
    x = node.inputs[0]
    dt = node.attrs.get("dtype")
    return [(dtypes.from_onnx(dt) if dt is not None else x.dtype, x.shape)]
