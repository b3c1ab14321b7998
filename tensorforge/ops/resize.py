"""Resize (opsets 10-19) and Upsample: one separable, exact per-axis interpolation."""
from __future__ import annotations

import math

from ..ir.lazy import sympy
import torch

from ..errors import ShapeError
from ..ir.symbolic import norm
from .common import dd_dims, has_input, known_ints, known_values, norm_axis
from .nearest import floor_mapping, upsample_nearest
from .registry import infer, reference

F64 = torch.float64


def _floats(t):
    if t is None:
        return None
    vals = t.reshape(-1).tolist() if isinstance(t, torch.Tensor) else list(t)
    return [float(v) for v in vals] or None


def plan_sizes(shape, scales=None, sizes=None, axes=None, policy="stretch"):
    """(output sizes, per-axis scale factors, resized axes) as the ONNX reference computes them."""
    r = len(shape)
    axes = [norm_axis(a, r) for a in axes] if axes else list(range(r))
    if sizes is not None:
        out = list(shape)
        for a, s in zip(axes, sizes):
            out[a] = int(s)
        fac = [out[i] / shape[i] if shape[i] else 1.0 for i in range(r)]
        if policy in ("not_larger", "not_smaller"):
            pick = min if policy == "not_larger" else max
            s = pick(fac[a] for a in axes)
            fac = [s if i in axes else 1.0 for i in range(r)]
            out = [int(s * shape[i] + 0.5) if i in axes else shape[i] for i in range(r)]
        return out, fac, axes
    if scales is None:
        raise ShapeError("Resize needs scales or sizes")
    fac = [1.0] * r
    for a, s in zip(axes, scales):
        fac[a] = float(s)
    return [int(fac[i] * shape[i]) for i in range(r)], fac, axes


def _source_coords(y, coord, scale, in_w, out_w, roi):
    """Source coordinate of each output index along one axis; plus the extrapolated mask.

    align_corners / tf_crop_and_resize / pytorch_half_pixel use scale * in_w as the output length,
    like the ONNX reference and its test data (ONNX Runtime uses the integer length: the two agree
    whenever scale * in_w is integral, e.g. always when sizes are given)."""
    fw = scale * in_w
    if coord == "align_corners":
        return (torch.zeros_like(y) if fw == 1 else y * (in_w - 1) / (fw - 1)), None
    if coord == "asymmetric":
        return y / scale, None
    if coord == "tf_crop_and_resize":
        lo, hi = roi
        x = torch.full_like(y, (hi - lo) * (in_w - 1) / 2) if fw == 1 else y * (hi - lo) * (in_w - 1) / (fw - 1)
        x = x + lo * (in_w - 1)
        return x, (x < 0) | (x > in_w - 1)
    if coord == "pytorch_half_pixel":
        return (torch.full_like(y, -0.5) if fw == 1 else (y + 0.5) / scale - 0.5), None
    if coord == "half_pixel":
        return (y + 0.5) / scale - 0.5, None
    if coord == "half_pixel_symmetric":
        offset = in_w / 2 * (1 - out_w / fw)
        return offset + (y + 0.5) / scale - 0.5, None
    raise ShapeError(f"Resize: unknown coordinate_transformation_mode '{coord}'")


def _coeffs(r, mode, scale, nearest_mode, a, antialias):
    """(out, n) interpolation weights for fractional offsets r (1.0 at integer positions)."""
    if mode == "nearest":
        whole = r == 1.0
        hi = {"round_prefer_floor": r > 0.5, "round_prefer_ceil": r >= 0.5,
              "floor": torch.zeros_like(whole), "ceil": torch.ones_like(whole)}[nearest_mode]
        hi = hi | whole
        return torch.stack([~hi, hi], -1).to(F64)
    if not antialias:
        if mode == "linear":
            return torch.stack([1 - r, r], -1)
        s, t = r + 1, 1 - r
        return torch.stack([((a * s - 5 * a) * s + 8 * a) * s - 4 * a,
                            ((a + 2) * r - (a + 3)) * r * r + 1,
                            ((a + 2) * t - (a + 3)) * t * t + 1,
                            ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a], -1)
    sc = min(scale, 1.0)
    reach = 1 if mode == "linear" else 2
    start = math.floor(-reach / sc) + 1
    taps = torch.arange(start, 2 - start, dtype=F64, device=r.device)
    x = ((taps[None, :] - r[:, None]) * sc).abs()
    if mode == "linear":
        w = (1 - x).clamp(0, 1)
    else:
        w = torch.where(x <= 1, (a + 2) * x ** 3 - (a + 3) * x ** 2 + 1,
                        torch.where(x < 2, a * x ** 3 - 5 * a * x ** 2 + 8 * a * x - 4 * a, torch.zeros_like(x)))
    return w / w.sum(-1, keepdim=True)


def axis_table(in_w, out_w, scale, mode="nearest", coord="half_pixel", nearest_mode="round_prefer_floor",
               a=-0.75, antialias=0, exclude_outside=0, roi=(0.0, 1.0), device=None):
    """Neighbour indices (out, n), weights (out, n) and extrapolation mask (or None) for one axis,
    built on `device` (default CPU)."""
    y = torch.arange(out_w, dtype=F64, device=device)
    x, extrap = _source_coords(y, coord, scale, in_w, out_w, roi)
    xi = torch.floor(x)
    r = torch.where(x == xi, torch.ones_like(x), x - xi)
    w = _coeffs(r, mode, scale, nearest_mode, a, antialias)
    n = w.shape[1]
    pad = (n + 1) // 2
    p = torch.floor(x + pad)
    frac = x + pad - p
    if n % 2 == 0:
        off = torch.where(frac == 0, -(n // 2), -(n // 2) + 1)
    else:
        base = -((n - 1) // 2)
        off = torch.where(frac <= 0.5, base, base + 1)
    idx = (p + off).to(torch.int64)[:, None] + torch.arange(n, device=y.device)[None, :] - pad
    if exclude_outside:
        w = torch.where((idx < 0) | (idx >= in_w), torch.zeros_like(w), w)
        tot = w.sum(-1, keepdim=True)
        w = w / torch.where(tot == 0, torch.ones_like(tot), tot)
    return idx.clamp(0, max(in_w - 1, 0)), w, extrap


def resize_axis(x, axis, idx, w, extrap=None, extrapolation_value=0.0, nearest=False):
    """Apply one axis table (on x's device) to x (float compute tensor); no host sync."""
    out_w, n = idx.shape
    if nearest:
        pick = idx.gather(1, w.argmax(1, keepdim=True)).reshape(-1)
        y = x.index_select(axis, pick)
    else:
        g = x.index_select(axis, idx.reshape(-1))
        g = g.reshape(x.shape[:axis] + (out_w, n) + x.shape[axis + 1:])
        shp = (1,) * axis + (out_w, n) + (1,) * (x.dim() - axis - 1)
        y = (g * w.to(x.dtype).reshape(shp)).sum(axis + 1)
    if extrap is not None:
        m = extrap.reshape((1,) * axis + (out_w,) + (1,) * (x.dim() - axis - 1))
        y = torch.where(m, torch.full((), extrapolation_value, dtype=y.dtype, device=y.device), y)
    return y


def _finish(y, dtype):
    """Cast the float result back, saturating (and rounding) for integer types like the reference."""
    if dtype.is_floating_point:
        return y.to(dtype)
    info = torch.iinfo(dtype)
    return torch.round(y).clamp(info.min, info.max).to(dtype)


def _nearest_factors(shape, out, fac, mode, coord, nearest_mode):
    """Integer factors when a nearest resize reads in[y // s] on every axis, else None."""
    if mode != "nearest" or coord == "tf_crop_and_resize":
        return None
    facs = []
    for d, o, f in zip(shape, out, fac):
        s = int(f) if float(f).is_integer() else 0
        if d == 0 or o != s * d or not floor_mapping(coord, nearest_mode, s):
            return None
        facs.append(s)
    return facs if any(f > 1 for f in facs) else None


def resize(x, scales=None, sizes=None, roi=None, axes=None, mode="nearest", coord="half_pixel",
           nearest_mode="round_prefer_floor", cubic_coeff_a=-0.75, antialias=0, exclude_outside=0,
           extrapolation_value=0.0, policy="stretch"):
    """Resize x (any rank) per the ONNX rules."""
    shape = list(x.shape)
    out, fac, axes = plan_sizes(shape, scales, sizes, axes, policy)
    r = len(shape)
    rois = [(0.0, 1.0)] * r
    if roi is not None and coord == "tf_crop_and_resize":
        k = len(roi) // 2
        for i, a in enumerate(axes if k == len(axes) else range(r)):
            rois[a] = (roi[i], roi[i + k])
    facs = _nearest_factors(shape, out, fac, mode, coord, nearest_mode)
    if facs is not None:  # in[y // s]: one copy instead of per-axis index tables
        return upsample_nearest(x, facs)
    ct = x.dtype if x.dtype in (torch.float32, torch.float64) else \
        (F64 if not x.dtype.is_floating_point else torch.float32)
    y = x if mode == "nearest" else x.to(ct)
    for a in axes:
        if math.isclose(fac[a], 1.0) and out[a] == y.shape[a] and rois[a] == (0.0, 1.0):
            continue
        idx, w, ext = axis_table(shape[a], out[a], fac[a], mode, coord, nearest_mode, cubic_coeff_a,
                                 antialias, exclude_outside, rois[a], x.device)
        y = resize_axis(y, a, idx, w, ext, extrapolation_value, nearest=mode == "nearest")
    return y.to(x.dtype) if mode == "nearest" else _finish(y, x.dtype)


@reference("Resize", host_inputs=(1, 2, 3))
def resize_ref(x, roi=None, scales=None, sizes=None, antialias=0, axes=None,
               coordinate_transformation_mode="half_pixel", cubic_coeff_a=-0.75, exclude_outside=0,
               extrapolation_value=0.0, keep_aspect_ratio_policy="stretch", mode="nearest",
               nearest_mode="round_prefer_floor", _opset=19):
    if _opset < 11:  # Resize-10: (X, scales); asymmetric coordinates, floor for nearest
        return resize(x, scales=_floats(roi), mode=mode, coord="asymmetric", nearest_mode="floor")
    sz = [int(v) for v in sizes.reshape(-1).tolist()] if sizes is not None and sizes.numel() else None
    return resize(x, _floats(scales) if sz is None else None, sz, _floats(roi), axes, mode,
                  coordinate_transformation_mode, nearest_mode, cubic_coeff_a, antialias,
                  exclude_outside, extrapolation_value, keep_aspect_ratio_policy)


@reference("Upsample", host_inputs=(1,))
def upsample_ref(x, scales_in=None, mode="nearest", scales=None):
    s = _floats(scales_in) if scales_in is not None else scales
    return resize(x, scales=s, mode=mode, coord="asymmetric", nearest_mode="floor")


def _scaled_dim(d, s):
    if isinstance(d, int):
        return int(s * d)
    if float(s).is_integer():
        return norm(int(s) * d)
    return norm(sympy.floor(sympy.Rational(s) * d))


def _dd_sizes(node, shape, axes):
    """Output dims when scales/sizes are computed at run time: the resized axes are data-dependent."""
    r = len(shape)
    ax = {norm_axis(a, r) for a in axes} if axes else set(range(r))
    dd = dd_dims(node, r)
    return [dd[i] if i in ax else d for i, d in enumerate(shape)]


def _infer_sizes(node, shape, scales_i, sizes_i, axes, policy):
    sizes = known_ints(node.inputs[sizes_i]) if sizes_i is not None and has_input(node, sizes_i) else None
    if sizes is None and sizes_i is not None and has_input(node, sizes_i) and node.inputs[sizes_i].shape != (0,):
        return _dd_sizes(node, shape, axes)  # sizes computed at run time
    if sizes:
        if not all(isinstance(d, int) for d in shape) and policy != "stretch":
            raise ShapeError(f"Resize '{node.name}': keep_aspect_ratio_policy needs static input dims")
        out = list(shape)
        if all(isinstance(d, int) for d in shape):
            return plan_sizes(shape, None, sizes, axes, policy)[0]
        for a, s in zip([norm_axis(a, len(shape)) for a in axes] if axes else range(len(shape)), sizes):
            out[a] = s
        return out
    scales = known_values(node.inputs[scales_i]) if has_input(node, scales_i) else None
    if scales is None:  # computed at run time: the resized axes are sized then
        return _dd_sizes(node, shape, axes)
    r = len(shape)
    ax = [norm_axis(a, r) for a in axes] if axes else list(range(r))
    out = list(shape)
    for a, s in zip(ax, scales):
        out[a] = _scaled_dim(shape[a], float(s))
    return out


@infer("Resize")
def resize_infer(node):
    x = node.inputs[0]
    a = node.attrs
    if len(node.inputs) == 2 or (node.inputs and len(node.inputs) < 3 and not has_input(node, 2)):
        out = _infer_sizes(node, x.shape, 1, None, None, "stretch")  # Resize-10: (X, scales)
    else:
        out = _infer_sizes(node, x.shape, 2, 3, a.get("axes"), a.get("keep_aspect_ratio_policy", "stretch"))
    return [(x.dtype, tuple(out))]


@infer("Upsample")
def upsample_infer(node):
    x = node.inputs[0]
    if "scales" in node.attrs:
        return [(x.dtype, tuple(_scaled_dim(d, s) for d, s in zip(x.shape, node.attrs["scales"])))]
    return [(x.dtype, tuple(_infer_sizes(node, x.shape, 1, None, None, "stretch")))]
