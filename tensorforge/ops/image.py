"""Image ops: GridSample, AffineGrid, CenterCropPad, Col2Im, DepthToSpace, SpaceToDepth, ImageDecoder."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import ShapeError
from ..ir.symbolic import norm
from .common import dd_dim, in_info, known_ints, norm_axis, tensor_arg
from .registry import infer, reference


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


def _div(d, k):
    if isinstance(d, int):
        if d % k:
            raise ShapeError(f"dim {d} is not divisible by {k}")
        return d // k
    return norm(d / k)


@reference("DepthToSpace")
def depth_to_space_ref(x, blocksize, mode="DCR"):
    n, c, h, w = x.shape
    b = blocksize
    if mode == "CRD":
        y = x.reshape(n, c // (b * b), b, b, h, w).permute(0, 1, 4, 2, 5, 3)
    else:
        y = x.reshape(n, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2)
    return y.reshape(n, c // (b * b), h * b, w * b)


@infer("DepthToSpace")
def depth_to_space_infer(node):
    n, c, h, w = node.inputs[0].shape
    b = node.attrs["blocksize"]
    return [(node.inputs[0].dtype, (n, _div(c, b * b), norm(h * b), norm(w * b)))]


@reference("SpaceToDepth")
def space_to_depth_ref(x, blocksize, mode="DCR"):
    n, c, h, w = x.shape
    b = blocksize
    y = x.reshape(n, c, h // b, b, w // b, b)
    y = y.permute(0, 1, 3, 5, 2, 4) if mode == "CRD" else y.permute(0, 3, 5, 1, 2, 4)
    return y.reshape(n, c * b * b, h // b, w // b)


@infer("SpaceToDepth")
def space_to_depth_infer(node):
    n, c, h, w = node.inputs[0].shape
    b = node.attrs["blocksize"]
    return [(node.inputs[0].dtype, (n, norm(c * b * b), _div(h, b), _div(w, b)))]


@reference("ImageDecoder", host_inputs=(0,), data_dependent=True)
def image_decoder_ref(encoded, pixel_format="RGB"):
    """Decode an encoded image (uint8 bytes) with Pillow into (H, W, C) uint8, on the host."""
    import io

    import numpy as np
    try:
        import PIL.Image
    except ImportError:
        raise ShapeError("ImageDecoder needs Pillow (pip install pillow); it is not supported without it") from None
    img = PIL.Image.open(io.BytesIO(encoded.cpu().numpy().tobytes()))
    if pixel_format == "Grayscale":
        y = np.array(img.convert("L"))[:, :, None]
    else:
        y = np.array(img.convert("RGB") if img.mode != "RGB" else img)
        y = y[:, :, ::-1] if pixel_format == "BGR" else y
    return torch.from_numpy(np.ascontiguousarray(y)).to(encoded.device)


@infer("ImageDecoder")
def image_decoder_infer(node):
    c = 1 if node.attrs.get("pixel_format", "RGB") == "Grayscale" else 3
    return [("uint8", (dd_dim(node, "_h"), dd_dim(node, "_w"), c))]
