"""Activations against ONNX Runtime: Shrink, Mish / HardSwish / Gelu edge values."""
import numpy as np
import pytest

from tensorforge.testing import rand

try:
    from .node_models import check, check_batches, check_node
except ImportError:
    from node_models import check, check_batches, check_node


@pytest.mark.parametrize("attrs", [{}, {"lambd": 0.3}, {"bias": 0.2, "lambd": 0.1}])
def test_shrink(attrs):
    check("Shrink", [rand((3, 7), lo=-2, hi=2)], attrs, opset=11)
    check_batches("Shrink", lambda b: [rand((b, 3), seed=b, lo=-2, hi=2)], attrs, opset=11)


def test_activation_edges():
    x = np.concatenate([rand((7,), seed=64, lo=-8, hi=8), np.float32([-30, 30, 3, -3, 0.5])])
    check_node("Mish", [x], opset=18, rtol=1e-5, atol=1e-6)
    check_node("HardSwish", [x], opset=14)
    for approx in ("none", "tanh"):
        check_node("Gelu", [x], {"approximate": approx}, opset=20, rtol=1e-5, atol=1e-6)
