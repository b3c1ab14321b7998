"""Softmax / LogSoftmax / Hardmax against ONNX Runtime: the axis semantics before and after opset 13."""
import pytest

from tensorforge.testing import rand

try:
    from .node_models import check_node
except ImportError:
    from node_models import check_node


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax", "Hardmax"])
@pytest.mark.parametrize("opset,axis", [(11, 1), (11, -1), (11, 2), (13, 1), (13, -2)])
def test_softmax_family_axis_semantics(op, opset, axis):
    check_node(op, [rand((2, 3, 4, 5), seed=63)], {"axis": axis}, opset=opset, rtol=1e-5, atol=1e-6)
