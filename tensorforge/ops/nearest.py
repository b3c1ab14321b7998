"""Nearest-neighbour Resize / Upsample by integer factors: when it reads exactly in[y // s], and the
one-copy implementation of that case (a zero-stride broadcast view, copied once).

With an integer scale s and output length s * in, the ONNX source coordinate of output index
y = s*k + j (0 <= j < s) is
  asymmetric:                                  x = k + j/s
  half_pixel, pytorch_half_pixel, half_pixel_symmetric:  x = k + (2j + 1 - s) / (2s)
  align_corners (n = input length):             x = y (n - 1) / (s n - 1) = y/s - y (s - 1) / (s (s n - 1))
(pytorch_half_pixel differs only for an output length of 1, half_pixel_symmetric only when the
output length is not s * in). The nearest index is k for every j exactly when
  asymmetric + floor (any s); asymmetric + round_prefer_floor (s = 2 only: j/s = 0.5 is a tie);
  half_pixel-family + round_prefer_floor / round_prefer_ceil (|frac| < 1/2, never a tie);
  align_corners + round_prefer_floor / round_prefer_ceil for s = 2 only (x lies in (k - 1/2, k + 1/2)
  at every n; for s >= 3 the y = s-1 of a long axis drifts past k + 1/2).
Every other combination (ceil, floor with half_pixel, tf_crop_and_resize, linear and cubic modes,
fractional scales) reads something else; tests check the table against the reference's."""
from __future__ import annotations

import torch

from .common import has_input, known_ints, known_values

HALF_PIXEL = ("half_pixel", "pytorch_half_pixel", "half_pixel_symmetric")


def floor_mapping(coord: str, nearest_mode: str, s: int) -> bool:
    """True when nearest interpolation with integer scale s (output = s * input) reads in[y // s]."""
    if coord == "tf_crop_and_resize" or s < 1:
        return False
    if s == 1:  # identity along that axis (the reference skips it)
        return True
    if coord == "asymmetric":
        return nearest_mode == "floor" or (nearest_mode == "round_prefer_floor" and s == 2)
    rounds = nearest_mode in ("round_prefer_floor", "round_prefer_ceil")
    return rounds and (coord in HALF_PIXEL or (coord == "align_corners" and s == 2))


def _int_scale(s) -> int | None:
    s = float(s)
    return int(s) if s.is_integer() and s >= 1 else None


def integer_factors(node, opset: int = 19) -> list[int] | None:
    """Per-axis integer factors of a Resize / Upsample node that reads in[y // s] on every axis
    (at least one factor > 1), else None. Needs constant scales (or constant sizes over static dims)."""
    x, out = node.inputs[0], node.outputs[0]
    if x is None or x.shape is None or out.shape is None or len(x.shape) != len(out.shape):
        return None
    a = node.attrs
    if a.get("mode", "nearest") != "nearest":
        return None
    r = len(x.shape)
    if node.op == "Upsample":
        coord, nm = "asymmetric", "floor"
        scales = a.get("scales") or (known_values(node.inputs[1]) if has_input(node, 1) else None)
        sizes = None
    elif opset < 11:  # Resize-10: (X, scales)
        coord, nm = "asymmetric", "floor"
        scales, sizes = known_values(node.inputs[1]) if has_input(node, 1) else None, None
    else:
        coord = a.get("coordinate_transformation_mode", "half_pixel")
        nm = a.get("nearest_mode", "round_prefer_floor")
        scales = known_values(node.inputs[2]) if has_input(node, 2) else None
        sizes = known_ints(node.inputs[3]) if has_input(node, 3) else None
        if sizes and a.get("keep_aspect_ratio_policy", "stretch") != "stretch":
            return None
    axes = [int(ax) % r for ax in a.get("axes", [])] or list(range(r))
    facs = [1] * r
    if sizes:
        if len(sizes) != len(axes):
            return None
        for ax, n in zip(axes, sizes):
            d = x.shape[ax]
            if not (isinstance(d, int) and isinstance(n, int) and d > 0 and n % d == 0):
                return None
            facs[ax] = n // d
    elif scales:
        if len(scales) != len(axes):
            return None
        for ax, s in zip(axes, scales):
            f = _int_scale(s)
            if f is None:
                return None
            facs[ax] = f
    else:
        return None
    if all(f == 1 for f in facs) or not all(floor_mapping(coord, nm, f) for f in facs):
        return None
    return facs


def broadcast_view(x: torch.Tensor, factors) -> torch.Tensor:
    """x as a 2r-D view of shape (d0, f0, d1, f1, ...) that repeats each element f times (zero strides)."""
    shape, strides = [], []
    for d, st, f in zip(x.shape, x.stride(), factors):
        shape += [d, f]
        strides += [st, 0]
    return x.as_strided(shape, strides, x.storage_offset())


def split_view(y: torch.Tensor, factors) -> torch.Tensor:
    """y (dims d*f) as the 2r-D view (d, f, ...) of the same elements."""
    shape, strides = [], []
    for n, st, f in zip(y.shape, y.stride(), factors):
        shape += [n // f, f]
        strides += [st * f, st]
    return y.as_strided(shape, strides, y.storage_offset())


def upsample_nearest(x: torch.Tensor, factors) -> torch.Tensor:
    """out[..., y, ...] = x[..., y // f, ...] per axis: one copy, in x's memory format."""
    out_shape = [d * f for d, f in zip(x.shape, factors)]
    fmt = torch.channels_last if x.dim() == 4 and not x.is_contiguous() and \
        x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    y = torch.empty(out_shape, dtype=x.dtype, device=x.device, memory_format=fmt)
    if y.numel():
        split_view(y, factors).copy_(broadcast_view(x, factors))
    return y
