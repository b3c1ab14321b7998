"""A YOLOv8-style detector (ultralytics layout and names; no DFL decode)."""
from __future__ import annotations

import math

from .builder import BATCH, GraphBuilder

NC, REG_MAX = 80, 16  # classes; DFL bins per box side -> 4 * 16 = 64 box channels


def yolo(b: GraphBuilder, widths=(16, 32, 64, 128, 256), depths=(1, 2, 2, 1), image=640,
         calib=(256, 64)):
    """YOLOv8n: Conv/C2f backbone, SPPF, FPN/PAN neck, three decoupled heads (strides 8/16/32)."""
    w0, w1, w2, w3, w4 = widths
    x = b.input("images", "float32", [BATCH, 3, image, image])
    b.calibrate(x, min(calib[0], image), image, calib[1])
    x = _conv(b, x, w0, 3, 2, "model.0")
    x = _conv(b, x, w1, 3, 2, "model.1")
    x = _c2f(b, x, w1, depths[0], True, "model.2")
    x = _conv(b, x, w2, 3, 2, "model.3")
    p3 = _c2f(b, x, w2, depths[1], True, "model.4")
    x = _conv(b, p3, w3, 3, 2, "model.5")
    p4 = _c2f(b, x, w3, depths[2], True, "model.6")
    x = _conv(b, p4, w4, 3, 2, "model.7")
    x = _c2f(b, x, w4, depths[3], True, "model.8")
    p5 = _sppf(b, x, w4, "model.9")
    # top-down (FPN)
    x = b.concat([b.resize2x(p5, "model.10"), p4], axis=1, local="model.11")
    n4 = _c2f(b, x, w3, 1, False, "model.12")
    x = b.concat([b.resize2x(n4, "model.13"), p3], axis=1, local="model.14")
    out3 = _c2f(b, x, w2, 1, False, "model.15")
    # bottom-up (PAN)
    x = b.concat([_conv(b, out3, w2, 3, 2, "model.16"), n4], axis=1, local="model.17")
    out4 = _c2f(b, x, w3, 1, False, "model.18")
    x = b.concat([_conv(b, out4, w3, 3, 2, "model.19"), p5], axis=1, local="model.20")
    out5 = _c2f(b, x, w4, 1, False, "model.21")
    y = _detect(b, [out3, out4, out5], "model.22")
    anchors = sum((image // s) ** 2 for s in (8, 16, 32))
    b.output(y, "output", "float32", [BATCH, 4 * REG_MAX + NC, anchors])


def _conv(b: GraphBuilder, x, cout, k, stride, prefix):
    """ultralytics Conv: conv (no bias) -> bn (eps 1e-3, momentum 0.03) -> SiLU."""
    with b.scope(prefix):
        y = b.bn(b.conv(x, cout, k, stride, local="conv", gain=2.0), "bn", eps=1e-3,
                 momentum=0.97)
        return b.silu(y, "act")


def _c2f(b: GraphBuilder, x, cout, n, shortcut, prefix):
    """cv1 -> Split in 2 -> n bottlenecks chained on the last chunk -> Concat all -> cv2."""
    c = cout // 2
    with b.scope(prefix):
        ys = list(b.split(_conv(b, x, 2 * c, 1, 1, "cv1"), [c, c], axis=1))
        for i in range(n):
            with b.scope(f"m.{i}"):
                y = _conv(b, _conv(b, ys[-1], c, 3, 1, "cv1"), c, 3, 1, "cv2")
                ys.append(b.add(ys[-1], y) if shortcut else y)
        return _conv(b, b.concat(ys, axis=1), cout, 1, 1, "cv2")


def _sppf(b: GraphBuilder, x, cout, prefix):
    """cv1 -> three chained MaxPool 5x5 s1 p2 -> Concat the four -> cv2."""
    with b.scope(prefix):
        ys = [_conv(b, x, b.ch[x] // 2, 1, 1, "cv1")]
        for _ in range(3):
            ys.append(b.maxpool(ys[-1], 5, 1, 2, "m"))
        return _conv(b, b.concat(ys, axis=1), cout, 1, 1, "cv2")


def _detect(b: GraphBuilder, feats, prefix):
    """Per level: box branch (cv2) and class branch (cv3) -> Concat; then flatten and join."""
    c2 = max(16, b.ch[feats[0]] // 4, 4 * REG_MAX)
    c3 = max(b.ch[feats[0]], min(NC, 100))
    no = 4 * REG_MAX + NC
    outs = []
    with b.scope(prefix):
        for i, (x, stride) in enumerate(zip(feats, (8, 16, 32))):
            box = _conv(b, _conv(b, x, c2, 3, 1, f"cv2.{i}.0"), c2, 3, 1, f"cv2.{i}.1")
            box = b.conv(box, 4 * REG_MAX, 1, bias=[1.0] * (4 * REG_MAX), local=f"cv2.{i}.2",
                         gain=1.0)
            cls = _conv(b, _conv(b, x, c3, 3, 1, f"cv3.{i}.0"), c3, 3, 1, f"cv3.{i}.1")
            prior = math.log(5 / NC / (640 / stride) ** 2)  # ultralytics Detect.bias_init
            cls = b.conv(cls, NC, 1, bias=[prior] * NC, local=f"cv3.{i}.2", gain=1.0)
            y = b.concat([box, cls], axis=1)
            outs.append(b.reshape(y, b.shape_of([b.dim(y, 0), no, -1])))  # view(n, no, -1)
        y = b.concat(outs, axis=2)
        box, cls = b.split(y, [4 * REG_MAX, NC], axis=1)
        return b.concat([box, b.sigmoid(cls)], axis=1)
