"""Convolutions: Conv, ConvTranspose, DeformConv, CausalConvWithState."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ShapeError
from ..ir.symbolic import norm
from .common import in_info
from .registry import infer, reference
from .spatial import pad_input, pool_out_dim, resolve_pads, spatial_attrs

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


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
    strides, dil, auto_pad, pads = spatial_attrs(node, x.shape, kshape)
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


@reference("DeformConv")
def deform_conv_ref(x, w, offset, b=None, mask=None, dilations=None, group=1, kernel_shape=None,
                    offset_group=1, pads=None, strides=None):
    """Bilinear samples at kernel taps moved by the offsets (zeros outside), times mask, then a
    grouped matmul with the weights."""
    n, c, ih, iw = x.shape
    kh, kw = kernel_shape or list(w.shape[2:])
    dh, dw = dilations or [1, 1]
    sh, sw = strides or [1, 1]
    pads = pads or [0, 0, 0, 0]
    og, (oh, ow) = offset_group, offset.shape[2:]
    off = offset.reshape(n, og, kh, kw, 2, oh, ow).to(torch.float32)
    dev = x.device
    ys = (torch.arange(kh, device=dev) * dh).reshape(kh, 1, 1, 1) + \
        (torch.arange(oh, device=dev) * sh - pads[0]).reshape(1, 1, oh, 1)
    xs = (torch.arange(kw, device=dev) * dw).reshape(1, kw, 1, 1) + \
        (torch.arange(ow, device=dev) * sw - pads[1]).reshape(1, 1, 1, ow)
    y = ys + off[:, :, :, :, 0]
    xx = xs + off[:, :, :, :, 1]
    grid = torch.stack([xx / max(iw - 1, 1) * 2 - 1, y / max(ih - 1, 1) * 2 - 1], -1)
    grid = grid.reshape(n * og, kh * kw * oh, ow, 2)
    src = x.reshape(n * og, c // og, ih, iw).to(torch.float32)
    s = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    s = s.reshape(n, og, c // og, kh, kw, oh, ow)
    if mask is not None:
        s = s * mask.reshape(n, og, 1, kh, kw, oh, ow).to(s.dtype)
    cols = s.reshape(n, group, (c // group) * kh * kw, oh * ow)
    wg = w.reshape(group, w.shape[0] // group, -1).to(s.dtype)
    out = torch.einsum("gok,ngkl->ngol", wg, cols).reshape(n, w.shape[0], oh, ow)
    if b is not None:
        out = out + b.reshape(1, -1, 1, 1).to(out.dtype)
    return out.to(x.dtype)


@infer("DeformConv")
def deform_conv_infer(node):
    (dt, xs), (_, ws), (_, os_) = in_info(node, 0), in_info(node, 1), in_info(node, 2)
    return [(dt, (xs[0], ws[0]) + tuple(os_[2:]))]


# depthwise causal conv carrying the last k-1 inputs as state
@reference("CausalConvWithState")
def causal_conv_ref(x, w, bias=None, past_state=None, activation="none"):
    k = w.shape[2]
    pad = past_state if past_state is not None else x.new_zeros((x.shape[0], x.shape[1], k - 1))
    xp = torch.cat([pad.to(x.dtype), x], 2)
    y = F.conv1d(xp, w, bias, groups=x.shape[1])
    if activation in ("silu", "swish"):
        y = (y.float() * torch.sigmoid(y.float())).to(x.dtype)
    return y, xp[:, :, xp.shape[2] - (k - 1):]


@infer("CausalConvWithState")
def causal_conv_infer(node):
    x, w = node.inputs[0], node.inputs[1]
    return [(x.dtype, x.shape), (x.dtype, (x.shape[0], x.shape[1], w.shape[2] - 1))]
