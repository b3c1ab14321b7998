"""Detection ops against ONNX Runtime: RoiAlign, NonMaxSuppression."""
import numpy as np

from tensorforge.testing import rand

try:
    from .node_models import I64, check_node, const
except ImportError:
    from node_models import I64, check_node, const


def test_roi_align():
    x = rand((2, 3, 11, 9), seed=9)
    rois = np.array([[1.2, 0.5, 6.7, 8.1], [0, 0, 8, 10.5], [3.3, 2.2, 4.1, 9.9]], np.float32)
    for mode in ("avg", "max"):
        for ratio in (2, 0):
            check_node("RoiAlign", [x, rois, np.array([0, 1, 1], np.int64)],
                       {"mode": mode, "output_height": 3, "output_width": 4, "sampling_ratio": ratio,
                        "spatial_scale": 0.8}, opset=16, rtol=1e-4)


def test_nms():
    boxes = rand((2, 7, 4), seed=10, lo=0, hi=10)
    scores = rand((2, 3, 7), seed=11, lo=0.01, hi=1)
    check_node("NonMaxSuppression", [boxes, scores, const([3], np.int64), const([0.3], np.float32),
                                     const([0.2], np.float32)], opset=11, out_types=[I64])
