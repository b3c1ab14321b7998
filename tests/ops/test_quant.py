"""Quantization ops against ONNX Runtime: Q/DQ (per axis, blocked, float8), dynamic quantization,
integer and QLinear MatMul/Conv."""
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from tensorforge.testing import make_model, rand

try:
    from .node_models import TYPES, check_node, const
except ImportError:
    from node_models import TYPES, check_node, const


@pytest.mark.parametrize("zp_type", [np.uint8, np.int8, np.int16, np.uint16])
def test_quantize_dequantize_per_axis(zp_type):
    x = rand((2, 3, 5), seed=7, lo=-4, hi=4)
    scale = const([0.05, 0.1, 0.02], np.float32)
    zp = const([3, 1, 2], zp_type)
    t = TYPES[zp_type]
    check_node("QuantizeLinear", [x, scale, zp], {"axis": 1}, out_types=[t], opset=21)
    q = rand((2, 3, 5), zp_type, seed=8, lo=1, hi=100)
    check_node("DequantizeLinear", [q, scale, zp], {"axis": 1}, out_types=[TensorProto.FLOAT], opset=21)


def test_quantize_blocked_and_saturate():
    x = rand((3, 7), seed=9, lo=-30, hi=30)
    check_node("QuantizeLinear", [x, const(rand((3, 4), seed=10, lo=0.05, hi=0.2)), const(np.full((3, 4), 5, np.int8))],
          {"axis": 1, "block_size": 2}, out_types=[TensorProto.INT8], opset=21)
    q = rand((3, 7), np.uint8, seed=11, lo=1, hi=255)
    check_node("DequantizeLinear", [q, const(rand((3, 3), seed=12, lo=0.05, hi=0.2)), const(np.full((3, 3), 7, np.uint8))],
          {"axis": 1, "block_size": 3}, out_types=[TensorProto.FLOAT], opset=21)


@pytest.mark.parametrize("saturate", [0, 1])
def test_quantize_float8(saturate):
    """ORT returns float8 as raw bytes: compare the decoded values (NaN where both overflow)."""
    import ml_dtypes
    from tensorforge.testing import run_ort, run_tf
    # in range, or far out of range (ORT and the ONNX reference round 448..480 differently unsaturated)
    x = np.concatenate([rand((15,), seed=13, lo=-600, hi=600), np.float32([1e4, -3e3])])
    node = helper.make_node("QuantizeLinear", ["x", "s"], ["y"], saturate=saturate,
                            output_dtype=TensorProto.FLOAT8E4M3FN)
    model = make_model([node], [("x", TensorProto.FLOAT, [17])], [("y", TensorProto.FLOAT8E4M3FN, None)],
                       [numpy_helper.from_array(np.float32(1.5), "s")], opset=21)
    ref = np.asarray(run_ort(model, {"x": x})["y"])
    ref = (ref.view(ml_dtypes.float8_e4m3fn) if ref.dtype == np.uint8 else ref).astype(np.float32)
    got = run_tf(model, {"x": x})["y"].astype(np.float32)
    np.testing.assert_array_equal(got, ref)


def test_dynamic_quantize_and_integer_matmul():
    check_node("DynamicQuantizeLinear", [rand((3, 7), seed=14, lo=-2, hi=3)],
          out_types=[TensorProto.UINT8, TensorProto.FLOAT, TensorProto.UINT8], opset=13)
    a, b = rand((3, 5), np.uint8, seed=15, lo=1, hi=255), rand((5, 4), np.uint8, seed=16, lo=1, hi=255)
    check_node("MatMulInteger", [a, b, const(np.uint8(12)), const(np.array([3, 4, 5, 6], np.uint8))],
          out_types=[TensorProto.INT32], opset=13)


def test_qlinear_matmul_and_conv():
    a, b = rand((2, 3, 5), np.int8, seed=17, lo=-100, hi=100), rand((2, 5, 4), np.int8, seed=18, lo=-100, hi=100)
    s = lambda v: const(np.float32(v))  # noqa: E731
    check_node("QLinearMatMul", [a, s(0.02), const(np.int8(1)), b, s(0.03), const(np.int8(-2)), s(0.05),
                            const(np.int8(3))], out_types=[TensorProto.INT8], opset=13)
    x, w = rand((1, 3, 7, 6), np.uint8, seed=19, lo=1, hi=255), rand((4, 3, 3, 3), np.uint8, seed=20, lo=1, hi=255)
    check_node("QLinearConv", [x, s(0.01), const(np.uint8(5)), w, const(np.full(4, 0.02, np.float32)),
                          const(np.uint8(3)), s(0.9), const(np.uint8(7)), const(np.arange(1, 5, dtype=np.int32))],
          {"pads": [1, 0, 1, 2], "strides": [2, 1]}, out_types=[TensorProto.UINT8], opset=13)
    check_node("ConvInteger", [x, w, const(np.uint8(9))], {"pads": [1, 1, 1, 1]}, out_types=[TensorProto.INT32], opset=13)
