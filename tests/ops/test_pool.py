"""Pooling against ONNX Runtime: LpPool, GlobalLpPool, MaxUnpool."""
import numpy as np

from tensorforge.testing import rand

try:
    from .node_models import check_node
except ImportError:
    from node_models import check_node


def test_lppool():
    check_node("LpPool", [rand((1, 2, 7, 6), seed=41)], {"kernel_shape": [3, 2], "p": 3, "pads": [1, 0, 1, 1],
                                                          "strides": [2, 1]}, opset=18, rtol=1e-4)
    check_node("GlobalLpPool", [rand((2, 3, 5, 4), seed=42)], {"p": 3}, rtol=1e-4)


def test_max_unpool():
    idx = np.array([[[[0, 3], [12, 15]]]], np.int64)
    check_node("MaxUnpool", [rand((1, 1, 2, 2), seed=12), idx], {"kernel_shape": [2, 2], "strides": [2, 2]},
               opset=11)
