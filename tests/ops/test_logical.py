"""Bitwise ops and BitShift against ONNX Runtime."""
import numpy as np
import pytest

from tensorforge.testing import rand

try:
    from .node_models import check_node
except ImportError:
    from node_models import check_node


@pytest.mark.parametrize("dtype", [np.uint8, np.uint32, np.uint64])  # ORT has no uint16 BitShift
def test_bitshift(dtype):
    a = rand((3, 5), dtype, seed=34, lo=1, hi=200)
    s = rand((3, 5), dtype, seed=35, lo=1, hi=7)
    for d in ("LEFT", "RIGHT"):
        check_node("BitShift", [a, s], {"direction": d}, opset=13)


@pytest.mark.parametrize("op", ["BitwiseAnd", "BitwiseOr", "BitwiseXor"])
def test_bitwise(op):
    a, b = rand((3, 4), np.int32, seed=36, lo=-1000, hi=1000), rand((4,), np.int32, seed=37, lo=-1000, hi=1000)
    check_node(op, [a, b], opset=18)
    check_node("BitwiseNot", [rand((5,), np.uint8, seed=38, lo=1, hi=255)], opset=18)
