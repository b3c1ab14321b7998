"""Signal ops (DFT, STFT, MelWeightMatrix), RoiAlign, and the data-dependent NonMaxSuppression and
Unique (their output lengths are known only after they run)."""
from __future__ import annotations

import math

import torch

from .. import dtypes
from ..errors import ShapeError
from ..ir.symbolic import DATA_DEPENDENT_PREFIX, numel, symbol
from .common import has_input, known_ints, norm_axis
from .registry import infer, reference


def _dd(node, tag=""):
    return symbol(f"{DATA_DEPENDENT_PREFIX}{node.name}{tag}")


def _scalar(t, default=None):
    if t is None or (isinstance(t, torch.Tensor) and t.numel() == 0):
        return default
    return t.reshape(-1)[0].item() if isinstance(t, torch.Tensor) else t


# ---- DFT / STFT -------------------------------------------------------------------------------------
def _as_complex(x):
    """(..., 1) real or (..., 2) real/imag -> complex tensor without the last dim (in double: the
    transforms' rounding noise stays far below float32's)."""
    xf = x.to(torch.float64)
    return xf[..., 0] if x.shape[-1] == 1 else torch.complex(xf[..., 0], xf[..., 1])


def _dft_axis(rank, axis_t, axis, opset):
    a = _scalar(axis_t) if axis_t is not None else (axis if axis is not None else (-2 if opset >= 20 else 1))
    return int(a) % rank


@reference("DFT", host_inputs=(1, 2))
def dft_ref(x, dft_length=None, axis_t=None, axis=None, inverse=0, onesided=0, _opset=20):
    ax = _dft_axis(x.dim(), axis_t, axis, _opset)
    n = _scalar(dft_length)
    sig = _as_complex(x)
    if inverse:
        n = n or (2 * (x.shape[ax] - 1) if onesided else x.shape[ax])
        if onesided:
            return torch.fft.irfft(sig, n=int(n), dim=ax).unsqueeze(-1).to(x.dtype)
        y = torch.fft.ifft(sig, n=int(n), dim=ax)
    else:
        y = torch.fft.fft(sig, n=int(n or x.shape[ax]), dim=ax)
        if onesided:
            y = y.narrow(ax, 0, y.shape[ax] // 2 + 1)
    return torch.stack([y.real, y.imag], -1).to(x.dtype)


@infer("DFT")
def dft_infer(node):
    x = node.inputs[0]
    a = node.attrs
    rank = len(x.shape)
    if has_input(node, 2):
        ax_v = known_ints(node.inputs[2])
        if ax_v is None:
            raise ShapeError(f"DFT '{node.name}': axis is data-dependent (not supported)")
        ax = ax_v[0] % rank
    elif "axis" in a:
        ax = a["axis"] % rank
    else:  # default axis is 1 before opset 20 and -2 from 20 on: the same axis for rank-3 inputs
        if 1 % rank != (-2) % rank:
            raise ShapeError(f"DFT '{node.name}': give the axis explicitly (its default differs "
                             "between opsets 17 and 20)")
        ax = 1
    n = known_ints(node.inputs[1])[0] if has_input(node, 1) else None
    shp = list(x.shape)
    if a.get("inverse", 0):
        shp[ax] = n or ((x.shape[ax] - 1) * 2 if a.get("onesided", 0) else x.shape[ax])
        shp[-1] = 1 if a.get("onesided", 0) else 2
    else:
        full = n or x.shape[ax]
        shp[ax] = full // 2 + 1 if a.get("onesided", 0) else full
        shp[-1] = 2
    return [(x.dtype, tuple(shp))]


@reference("STFT", host_inputs=(1, 3))
def stft_ref(signal, frame_step, window=None, frame_length=None, onesided=1):
    step = int(_scalar(frame_step))
    n = int(_scalar(frame_length)) if frame_length is not None else window.shape[0]
    sig = _as_complex(signal)  # (B, L)
    frames = sig.unfold(-1, n, step)  # (B, frames, n)
    if window is not None:
        frames = frames * window.to(frames.real.dtype if frames.is_complex() else frames.dtype)
    y = torch.fft.fft(frames, n=n, dim=-1)
    if onesided:
        y = y[..., : n // 2 + 1]
    return torch.stack([y.real, y.imag], -1).to(signal.dtype)


@infer("STFT")
def stft_infer(node):
    x = node.inputs[0]
    step = known_ints(node.inputs[1])
    n = known_ints(node.inputs[3])[0] if has_input(node, 3) else (
        node.inputs[2].shape[0] if has_input(node, 2) else None)
    if step is None or n is None:
        raise ShapeError(f"STFT '{node.name}': frame step/length are data-dependent (not supported)")
    frames = (x.shape[1] - n) // step[0] + 1
    bins = n // 2 + 1 if node.attrs.get("onesided", 1) else n
    return [(x.dtype, (x.shape[0], frames, bins, 2))]


@reference("MelWeightMatrix", host_inputs=(0, 1, 2, 3, 4))
def mel_ref(num_mel_bins, dft_length, sample_rate, lower_edge_hertz, upper_edge_hertz, output_datatype=1):
    """Triangular mel filters over the one-sided spectrum (the ONNX reference's integer bin edges)."""
    mels, n, sr = int(_scalar(num_mel_bins)), int(_scalar(dft_length)), int(_scalar(sample_rate))
    lo, hi = float(_scalar(lower_edge_hertz)), float(_scalar(upper_edge_hertz))
    to_mel = lambda f: 2595 * math.log1p(f / 700) / math.log(10)  # noqa: E731
    lm, hm = to_mel(lo), to_mel(hi)
    step = (hm - lm) / (mels + 2)
    edges = [int(((n + 1) * (700 * math.expm1((i * step + lm) / 2595 * math.log(10)))) // sr)
             for i in range(mels + 2)]
    out = torch.zeros((n // 2 + 1, mels), dtype=torch.float64)
    for i in range(mels):
        left, center, right = edges[i], edges[i + 1], edges[i + 2]
        if center == left:
            out[center, i] = 1
        else:
            for j in range(left, center + 1):
                out[j, i] = (j - left) / (center - left)
        for j in range(center, right):
            out[j, i] = (right - j) / (right - center)
    return out.to(dtypes.to_torch(dtypes.from_onnx(output_datatype)))


@infer("MelWeightMatrix")
def mel_infer(node):
    mels, n = known_ints(node.inputs[0]), known_ints(node.inputs[1])
    if mels is None or n is None:
        raise ShapeError(f"MelWeightMatrix '{node.name}': sizes are data-dependent (not supported)")
    return [(dtypes.from_onnx(node.attrs.get("output_datatype", 1)), (n[0] // 2 + 1, mels[0]))]


# ---- RoiAlign ------------------------------------------------------------------------------------------
def _axis_samples(start, bin_size, pooled, grid, limit):
    """Sample coordinates (R, pooled*grid) of one axis with their bilinear corner indices/weights."""
    p = torch.arange(pooled, dtype=start.dtype, device=start.device).repeat_interleave(grid)
    g = torch.arange(grid, dtype=start.dtype, device=start.device).repeat(pooled)
    c = start[:, None] + p * bin_size[:, None] + (g + 0.5) * bin_size[:, None] / grid
    valid = (c >= -1.0) & (c <= limit)
    c = c.clamp(min=0)
    low = c.floor().to(torch.int64)
    edge = low >= limit - 1
    low = torch.where(edge, torch.full_like(low, limit - 1), low)
    high = torch.where(edge, low, low + 1)
    c = torch.where(edge, low.to(c.dtype), c)
    frac = c - low.to(c.dtype)
    return low, high, frac, valid


def _roi_align_fixed(x, rois, bidx, ph, pw, gh, gw, scale, half_pixel, mode):
    h, w = x.shape[2], x.shape[3]
    off = 0.5 if half_pixel else 0.0
    r = rois.to(torch.float64) * scale - off
    rw, rh = r[:, 2] - r[:, 0], r[:, 3] - r[:, 1]
    if not half_pixel:
        rw, rh = rw.clamp(min=1.0), rh.clamp(min=1.0)
    yl, yh, fy, vy = _axis_samples(r[:, 1], rh / ph, ph, gh, h)
    xl, xh, fx, vx = _axis_samples(r[:, 0], rw / pw, pw, gw, w)
    feat = x[bidx.to(torch.int64)].flatten(2)  # (R, C, H*W)
    n, c = feat.shape[:2]

    def pick(ys, xs):
        pos = (ys[:, :, None] * w + xs[:, None, :]).reshape(n, 1, -1).expand(n, c, -1)
        return feat.gather(2, pos).reshape(n, c, ys.shape[1], xs.shape[1]).to(torch.float64)

    wy0, wy1 = (1 - fy)[:, None, :, None], fy[:, None, :, None]
    wx0, wx1 = (1 - fx)[:, None, None, :], fx[:, None, None, :]
    terms = [wy0 * wx0 * pick(yl, xl), wy0 * wx1 * pick(yl, xh), wy1 * wx0 * pick(yh, xl), wy1 * wx1 * pick(yh, xh)]
    valid = (vy[:, None, :, None] & vx[:, None, None, :])
    val = torch.stack(terms).amax(0) if mode == "max" else sum(terms)
    val = torch.where(valid, val, torch.zeros_like(val)).reshape(n, c, ph, gh, pw, gw)
    out = val.amax((3, 5)) if mode == "max" else val.sum((3, 5)) / max(gh * gw, 1)
    return out.to(x.dtype)


@reference("RoiAlign")
def roi_align_ref(x, rois, batch_indices, coordinate_transformation_mode="half_pixel", mode="avg",
                  output_height=1, output_width=1, sampling_ratio=0, spatial_scale=1.0, _opset=16):
    half = coordinate_transformation_mode == "half_pixel" if _opset >= 16 else False
    ph, pw = output_height, output_width
    if sampling_ratio > 0:
        return _roi_align_fixed(x, rois, batch_indices, ph, pw, sampling_ratio, sampling_ratio,
                                spatial_scale, half, mode)
    outs = []  # adaptive grid: its size depends on each ROI's extent (read on the host)
    for i, roi in enumerate(rois.tolist()):
        rw, rh = (roi[2] - roi[0]) * spatial_scale, (roi[3] - roi[1]) * spatial_scale
        if not half:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        gh, gw = max(1, math.ceil(rh / ph)), max(1, math.ceil(rw / pw))
        outs.append(_roi_align_fixed(x, rois[i:i + 1], batch_indices[i:i + 1], ph, pw, gh, gw,
                                     spatial_scale, half, mode))
    return torch.cat(outs) if outs else x.new_zeros((0, x.shape[1], ph, pw))


@infer("RoiAlign")
def roi_align_infer(node):
    x, r = node.inputs[0], node.inputs[1]
    a = node.attrs
    return [(x.dtype, (r.shape[0], x.shape[1], a.get("output_height", 1), a.get("output_width", 1)))]


# ---- NonMaxSuppression / Unique (data-dependent output lengths) ---------------------------------------
def _corners(b, center):
    if center:
        return torch.stack([b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 3] / 2, b[:, 0] + b[:, 2] / 2,
                            b[:, 1] + b[:, 3] / 2], 1)  # x1, y1, x2, y2
    y1, y2 = torch.minimum(b[:, 0], b[:, 2]), torch.maximum(b[:, 0], b[:, 2])
    x1, x2 = torch.minimum(b[:, 1], b[:, 3]), torch.maximum(b[:, 1], b[:, 3])
    return torch.stack([x1, y1, x2, y2], 1)


def _iou(c):
    lt = torch.maximum(c[:, None, :2], c[None, :, :2])
    rb = torch.minimum(c[:, None, 2:], c[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    area = (c[:, 2] - c[:, 0]) * (c[:, 3] - c[:, 1])
    union = area[:, None] + area[None, :] - inter
    ok = (inter > 0) & (area[:, None] > 0) & (area[None, :] > 0) & (union > 0)
    return torch.where(ok, inter / torch.where(union > 0, union, torch.ones_like(union)), torch.zeros_like(inter))


@reference("NonMaxSuppression", host_inputs=(2, 3, 4), data_dependent=True)
def nms_ref(boxes, scores, max_output_boxes_per_class=None, iou_threshold=None, score_threshold=None,
            center_point_box=0):
    """Greedy per-class NMS; rows of (batch, class, box) in selection order."""
    k = max(int(_scalar(max_output_boxes_per_class, 0)), 0)
    iou_t = float(_scalar(iou_threshold, 0.0))
    score_t = _scalar(score_threshold)
    b_cpu, s_cpu = boxes.detach().to("cpu", torch.float64), scores.detach().to("cpu", torch.float64)
    rows = []
    for bi in range(b_cpu.shape[0]):
        iou = _iou(_corners(b_cpu[bi], center_point_box))
        for ci in range(s_cpu.shape[1]):
            sc = s_cpu[bi, ci]
            cand = [i for i in range(sc.shape[0]) if score_t is None or sc[i] > score_t]
            cand.sort(key=lambda i: (-float(sc[i]), i))
            kept = []
            for i in cand:
                if len(kept) >= k:
                    break
                if all(iou[i, j] <= iou_t for j in kept):
                    kept.append(i)
                    rows.append((bi, ci, i))
    return torch.tensor(rows, dtype=torch.int64, device=boxes.device).reshape(-1, 3)


infer("NonMaxSuppression")(lambda node: [("int64", (_dd(node), 3))])


@reference("Unique", data_dependent=True)
def unique_ref(x, axis=None, sorted=1):  # noqa: A002 - ONNX name
    src = x.reshape(-1) if axis is None else x
    dim = 0 if axis is None else norm_axis(axis, x.dim())
    y, inv, cnt = torch.unique(src, sorted=True, return_inverse=True, return_counts=True, dim=dim)
    pos = torch.arange(src.shape[dim], device=x.device)
    first = torch.full((y.shape[dim],), src.shape[dim], dtype=torch.int64, device=x.device)
    first = first.scatter_reduce(0, inv, pos, reduce="amin")
    if not sorted:  # order of first occurrence
        order = torch.argsort(first)
        rank = torch.empty_like(order)
        rank[order] = torch.arange(order.numel(), device=x.device)
        y, first, cnt, inv = y.index_select(dim, order), first[order], cnt[order], rank[inv]
    return y, first, inv.reshape(-1), cnt


@infer("Unique")
def unique_infer(node):
    x = node.inputs[0]
    u = _dd(node)
    ax = node.attrs.get("axis")
    if ax is None:
        shp, n_in = (u,), numel(x.shape)
    else:
        a = norm_axis(ax, len(x.shape))
        shp = tuple(u if i == a else d for i, d in enumerate(x.shape))
        n_in = x.shape[a]
    return [(x.dtype, shp), ("int64", (u,)), ("int64", (n_in,)), ("int64", (u,))]

