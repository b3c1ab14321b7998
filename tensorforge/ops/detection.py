"""Object detection: RoiAlign, NonMaxSuppression."""
from __future__ import annotations

import math

import torch

from .common import dd_dim, scalar_item
from .registry import infer, reference


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
    k = max(int(scalar_item(max_output_boxes_per_class, 0)), 0)
    iou_t = float(scalar_item(iou_threshold, 0.0))
    score_t = scalar_item(score_threshold)
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


infer("NonMaxSuppression")(lambda node: [("int64", (dd_dim(node), 3))])
