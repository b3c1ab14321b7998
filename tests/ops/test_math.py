"""Math ops against ONNX Runtime: CumSum (and its symbolic batch)."""
import numpy as np
import pytest

from tensorforge.testing import rand

try:
    from .node_models import C, check, check_batches
except ImportError:
    from node_models import C, check, check_batches


@pytest.mark.parametrize("attrs", [{}, {"exclusive": 1}, {"reverse": 1}, {"exclusive": 1, "reverse": 1}])
@pytest.mark.parametrize("axis", [0, -1])
def test_cumsum(attrs, axis):
    check("CumSum", [rand((3, 5)), C(axis)], attrs, opset=14)
    check("CumSum", [rand((4, 1, 3), np.int64, lo=-5, hi=5), C(axis, np.int32)], attrs, opset=14)


def test_cumsum_symbolic_batch():
    check_batches("CumSum", lambda b: [rand((b, 6), seed=b), C(1)], {"reverse": 1}, opset=14)
