"""Image ops against ONNX Runtime: DepthToSpace / SpaceToDepth, GridSample, AffineGrid, Col2Im,
CenterCropPad."""
import numpy as np
import pytest

from tensorforge.testing import rand

try:
    from .node_models import check, check_batches, check_node, const
except ImportError:
    from node_models import check, check_batches, check_node, const


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
@pytest.mark.parametrize("shape,b", [((1, 8, 2, 3), 2), ((2, 9, 1, 2), 3)])
def test_depth_to_space(mode, shape, b):
    check("DepthToSpace", [rand(shape)], {"blocksize": b, "mode": mode}, opset=13)


@pytest.mark.parametrize("shape,b", [((1, 2, 4, 6), 2), ((2, 3, 3, 6), 3)])
def test_space_to_depth(shape, b):
    check("SpaceToDepth", [rand(shape)], {"blocksize": b}, opset=13)


def test_depth_space_symbolic_batch():
    check_batches("DepthToSpace", lambda b: [rand((b, 4, 2, 3), seed=b)], {"blocksize": 2}, opset=13)
    check_batches("SpaceToDepth", lambda b: [rand((b, 1, 4, 2), seed=b)], {"blocksize": 2}, opset=13)


@pytest.mark.parametrize("mode", ["linear", "nearest", "cubic"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align", [0, 1])
def test_grid_sample(mode, padding_mode, align):
    x, grid = rand((2, 3, 5, 7), seed=1), rand((2, 4, 6, 2), seed=2, lo=-1.2, hi=1.2)
    check_node("GridSample", [x, grid], {"mode": mode, "padding_mode": padding_mode, "align_corners": align},
          opset=20, rtol=1e-4, atol=1e-5)


def test_affine_grid_col2im_center_crop_pad():
    check_node("AffineGrid", [rand((2, 2, 3), seed=3), const([2, 3, 5, 7], np.int64)], {"align_corners": 0}, opset=20)
    check_node("Col2Im", [rand((2, 12, 15), seed=4), const([5, 6], np.int64), const([2, 2], np.int64)],
          {"strides": [1, 2], "pads": [1, 0, 0, 1]}, opset=18)
    check_node("CenterCropPad", [rand((3, 8, 5), seed=5), const([5, 9], np.int64)], {"axes": [1, 2]}, opset=18)
