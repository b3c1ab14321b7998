"""Sliding-window geometry shared by Conv and the pools: explicit pads, output lengths, padding."""
from __future__ import annotations

from ..ir.lazy import sympy
import torch.nn.functional as F

from ..ir.symbolic import norm


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
    if all(type(v) is int for v in (inp, k, s, d, pb, pe)):  # integer math: the runtime needs no sympy
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            return -(-inp // s)
        num = inp + pb + pe - ((k - 1) * d + 1)
        o = (-(-num // s) if ceil_mode else num // s) + 1
        return o - 1 if ceil_mode and (o - 1) * s >= inp + pb else o
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


def spatial_attrs(node, x_shape, kshape):
    n = len(kshape)
    strides = node.attrs.get("strides", [1] * n)
    dil = node.attrs.get("dilations", [1] * n)
    auto_pad = node.attrs.get("auto_pad", "NOTSET")
    pads = node.attrs.get("pads", [0] * (2 * n))
    return strides, dil, auto_pad, pads


def pad_input(x, pads, value=0.0):
    """Apply ONNX-style [begin..., end...] pads to the trailing spatial dims of x."""
    n = len(pads) // 2
    tp = []
    for i in reversed(range(n)):
        tp += [pads[i], pads[i + n]]
    return F.pad(x, tp, value=value) if any(tp) else x
