"""Resize (modes, coordinate transforms, sizes/axes, antialias) and Upsample against ONNX Runtime."""
import numpy as np
import pytest

from tensorforge.testing import rand

try:
    from .node_models import check_node, const
except ImportError:
    from node_models import check_node, const


@pytest.mark.parametrize("mode,coord,nearest", [
    ("nearest", "half_pixel", "round_prefer_floor"), ("nearest", "asymmetric", "floor"),
    ("nearest", "align_corners", "ceil"), ("nearest", "pytorch_half_pixel", "round_prefer_floor"),
    ("linear", "half_pixel", None), ("linear", "pytorch_half_pixel", None),
    ("linear", "align_corners", None), ("linear", "asymmetric", None),
    ("cubic", "half_pixel", None), ("cubic", "align_corners", None),
    ("linear", "half_pixel_symmetric", None)])
# scales with integral output extents (ORT and the ONNX reference then agree on align_corners) and
# no rounding ties at source coordinates (ORT computes them in float32, the reference in float64)
@pytest.mark.parametrize("scales", [(1, 1, 1.5, 2.2), (1, 1, 0.5, 0.6)])
def test_resize_scales(mode, coord, nearest, scales):
    attrs = {"mode": mode, "coordinate_transformation_mode": coord}
    if nearest:
        attrs["nearest_mode"] = nearest
    x = rand((2, 3, 6, 5), seed=1)
    check_node("Resize", [x, None, const(scales, np.float32)], attrs, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("policy", ["stretch", "not_larger", "not_smaller"])
def test_resize_sizes_axes(policy):
    x = rand((2, 3, 7, 5), seed=2)
    attrs = {"mode": "linear", "axes": [2, 3], "keep_aspect_ratio_policy": policy}
    check_node("Resize", [x, None, None, const([11, 4], np.int64)], attrs, rtol=1e-4)


@pytest.mark.parametrize("mode", ["linear", "cubic"])
def test_resize_antialias_exclude_outside(mode):
    x = rand((1, 2, 9, 11), seed=3)
    attrs = {"mode": mode, "antialias": 1, "exclude_outside": 1, "cubic_coeff_a": -0.5}
    check_node("Resize", [x, None, const([1, 1, 0.5, 0.37], np.float32)], attrs, rtol=1e-4)


def test_resize_tf_crop_and_resize_and_uint8():
    x = rand((1, 1, 6, 7), seed=4)
    roi = const([0, 0, 0.2, 0.3, 1, 1, 0.9, 0.8], np.float32)
    check_node("Resize", [x, roi, None, const([1, 1, 5, 4], np.int64)],
          {"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize",
           "extrapolation_value": 2.5}, rtol=1e-4)
    xi = rand((1, 2, 5, 3), np.uint8, seed=5, lo=1, hi=250)
    check_node("Resize", [xi, None, const([1, 1, 2.0, 3.0], np.float32)], {"mode": "nearest"})


def test_upsample_opset9():
    x = rand((1, 2, 3, 5), seed=6)
    check_node("Upsample", [x, const([1, 1, 2, 3], np.float32)], {"mode": "nearest"}, opset=9)
