"""Convolutions against ONNX Runtime (onnx.reference for CausalConvWithState): DeformConv,
CausalConvWithState."""
from tensorforge.testing import rand

try:
    from .node_models import check_node
except ImportError:
    from node_models import check_node


def test_deform_conv():
    x, w = rand((2, 4, 6, 7), seed=40), rand((6, 2, 3, 2), seed=41)
    off = rand((2, 2 * 2 * 3 * 2, 5, 4), seed=42, lo=-1.5, hi=1.5)
    mask = rand((2, 2 * 3 * 2, 5, 4), seed=43, lo=0.1, hi=1.0)
    check_node("DeformConv", [x, w, off, rand((6,), seed=44), mask],
               {"group": 2, "offset_group": 2, "pads": [1, 0, 0, 1], "strides": [1, 2]}, opset=19, rtol=1e-4)


def test_causal_conv_with_state():
    x, w = rand((2, 3, 7), seed=25), rand((3, 1, 4), seed=26)
    check_node("CausalConvWithState", [x, w, rand((3,), seed=27), rand((2, 3, 3), seed=28)],
               {"activation": "silu"}, opset=27, outs=2, oracle="onnx", rtol=1e-4)
