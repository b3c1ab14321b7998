"""Op coverage part B against ONNX Runtime: Resize/Upsample, quantization, Attention, bit ops,
Det, LRN, Lp pooling, RMSNormalization, RotaryEmbedding, losses (random non-zero inputs, odd sizes)."""
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from tensorforge.testing import check_against_ort, make_model, rand

_T = {np.float32: TensorProto.FLOAT, np.float16: TensorProto.FLOAT16, np.float64: TensorProto.DOUBLE,
      np.int64: TensorProto.INT64, np.int32: TensorProto.INT32, np.int8: TensorProto.INT8,
      np.uint8: TensorProto.UINT8, np.int16: TensorProto.INT16, np.uint16: TensorProto.UINT16,
      np.uint32: TensorProto.UINT32, np.uint64: TensorProto.UINT64, np.bool_: TensorProto.BOOL}


def const(x, dtype=None):
    """Marks a node input as an initializer."""
    return ("const", np.asarray(x, dtype=dtype))


def check(op, ins, attrs=None, opset=19, outs=1, out_types=None, rtol=1e-5, atol=1e-5, oracle="ort"):
    """One-node model: arrays become graph inputs, const(...) initializers, None omitted inputs.

    oracle="onnx" compares with onnx.reference (for ops ONNX Runtime does not implement)."""
    names, graph_in, inits, feed = [], [], [], {}
    for i, x in enumerate(ins):
        if x is None:
            names.append("")
        elif isinstance(x, tuple) and x[0] == "const":
            names.append(f"c{i}")
            inits.append(numpy_helper.from_array(x[1], f"c{i}"))
        else:
            names.append(f"x{i}")
            graph_in.append((f"x{i}", _T[x.dtype.type], list(x.shape)))
            feed[f"x{i}"] = x
    out_types = out_types or [graph_in[0][1]] * outs
    node = helper.make_node(op, names, [f"y{j}" for j in range(len(out_types))], **(attrs or {}))
    model = make_model([node], graph_in, [(f"y{j}", t, None) for j, t in enumerate(out_types)], inits,
                       opset=opset)
    if oracle == "onnx":
        from onnx.reference import ReferenceEvaluator
        from tensorforge.testing import assert_close, run_tf
        ref = dict(zip([o.name for o in model.graph.output], ReferenceEvaluator(model).run(None, feed)))
        got = run_tf(model, feed)
        assert_close(got, ref, rtol, atol)
        return got
    return check_against_ort(model, feed, rtol=rtol, atol=atol)


# ---- Resize / Upsample ----------------------------------------------------------------------------
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
    check("Resize", [x, None, const(scales, np.float32)], attrs, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("policy", ["stretch", "not_larger", "not_smaller"])
def test_resize_sizes_axes(policy):
    x = rand((2, 3, 7, 5), seed=2)
    attrs = {"mode": "linear", "axes": [2, 3], "keep_aspect_ratio_policy": policy}
    check("Resize", [x, None, None, const([11, 4], np.int64)], attrs, rtol=1e-4)


@pytest.mark.parametrize("mode", ["linear", "cubic"])
def test_resize_antialias_exclude_outside(mode):
    x = rand((1, 2, 9, 11), seed=3)
    attrs = {"mode": mode, "antialias": 1, "exclude_outside": 1, "cubic_coeff_a": -0.5}
    check("Resize", [x, None, const([1, 1, 0.5, 0.37], np.float32)], attrs, rtol=1e-4)


def test_resize_tf_crop_and_resize_and_uint8():
    x = rand((1, 1, 6, 7), seed=4)
    roi = const([0, 0, 0.2, 0.3, 1, 1, 0.9, 0.8], np.float32)
    check("Resize", [x, roi, None, const([1, 1, 5, 4], np.int64)],
          {"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize",
           "extrapolation_value": 2.5}, rtol=1e-4)
    xi = rand((1, 2, 5, 3), np.uint8, seed=5, lo=1, hi=250)
    check("Resize", [xi, None, const([1, 1, 2.0, 3.0], np.float32)], {"mode": "nearest"})


def test_upsample_opset9():
    x = rand((1, 2, 3, 5), seed=6)
    check("Upsample", [x, const([1, 1, 2, 3], np.float32)], {"mode": "nearest"}, opset=9)


# ---- quantization ---------------------------------------------------------------------------------
@pytest.mark.parametrize("zp_type", [np.uint8, np.int8, np.int16, np.uint16])
def test_quantize_dequantize_per_axis(zp_type):
    x = rand((2, 3, 5), seed=7, lo=-4, hi=4)
    scale = const([0.05, 0.1, 0.02], np.float32)
    zp = const([3, 1, 2], zp_type)
    t = _T[zp_type]
    check("QuantizeLinear", [x, scale, zp], {"axis": 1}, out_types=[t], opset=21)
    q = rand((2, 3, 5), zp_type, seed=8, lo=1, hi=100)
    check("DequantizeLinear", [q, scale, zp], {"axis": 1}, out_types=[TensorProto.FLOAT], opset=21)


def test_quantize_blocked_and_saturate():
    x = rand((3, 7), seed=9, lo=-30, hi=30)
    check("QuantizeLinear", [x, const(rand((3, 4), seed=10, lo=0.05, hi=0.2)), const(np.full((3, 4), 5, np.int8))],
          {"axis": 1, "block_size": 2}, out_types=[TensorProto.INT8], opset=21)
    q = rand((3, 7), np.uint8, seed=11, lo=1, hi=255)
    check("DequantizeLinear", [q, const(rand((3, 3), seed=12, lo=0.05, hi=0.2)), const(np.full((3, 3), 7, np.uint8))],
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
    check("DynamicQuantizeLinear", [rand((3, 7), seed=14, lo=-2, hi=3)],
          out_types=[TensorProto.UINT8, TensorProto.FLOAT, TensorProto.UINT8], opset=13)
    a, b = rand((3, 5), np.uint8, seed=15, lo=1, hi=255), rand((5, 4), np.uint8, seed=16, lo=1, hi=255)
    check("MatMulInteger", [a, b, const(np.uint8(12)), const(np.array([3, 4, 5, 6], np.uint8))],
          out_types=[TensorProto.INT32], opset=13)


def test_qlinear_matmul_and_conv():
    a, b = rand((2, 3, 5), np.int8, seed=17, lo=-100, hi=100), rand((2, 5, 4), np.int8, seed=18, lo=-100, hi=100)
    s = lambda v: const(np.float32(v))  # noqa: E731
    check("QLinearMatMul", [a, s(0.02), const(np.int8(1)), b, s(0.03), const(np.int8(-2)), s(0.05),
                            const(np.int8(3))], out_types=[TensorProto.INT8], opset=13)
    x, w = rand((1, 3, 7, 6), np.uint8, seed=19, lo=1, hi=255), rand((4, 3, 3, 3), np.uint8, seed=20, lo=1, hi=255)
    check("QLinearConv", [x, s(0.01), const(np.uint8(5)), w, const(np.full(4, 0.02, np.float32)),
                          const(np.uint8(3)), s(0.9), const(np.uint8(7)), const(np.arange(1, 5, dtype=np.int32))],
          {"pads": [1, 0, 1, 2], "strides": [2, 1]}, out_types=[TensorProto.UINT8], opset=13)
    check("ConvInteger", [x, w, const(np.uint8(9))], {"pads": [1, 1, 1, 1]}, out_types=[TensorProto.INT32], opset=13)


# ---- Attention / RotaryEmbedding / RMSNormalization ------------------------------------------------
@pytest.mark.parametrize("variant", ["plain", "causal_gqa", "mask_softcap", "past", "rank3"])
def test_attention(variant):
    b, hq, hkv, sq, skv, d = 2, 4, 4, 3, 5, 8
    attrs, extra, outs = {}, [], 1
    if variant == "causal_gqa":
        hkv, attrs = 2, {"is_causal": 1}
    q = rand((b, hq, sq, d), seed=21)
    k, v = rand((b, hkv, skv, d), seed=22), rand((b, hkv, skv, d), seed=23)
    if variant == "mask_softcap":
        attrs = {"softcap": 2.0, "scale": 0.3}
        extra = [rand((sq, skv), seed=24)]
    if variant == "past":
        extra = [None, rand((b, hkv, 2, d), seed=25), rand((b, hkv, 2, d), seed=26)]
        outs, attrs = 3, {"is_causal": 1}
    if variant == "rank3":
        q, k, v = (t.transpose(0, 2, 1, 3).reshape(t.shape[0], t.shape[2], -1) for t in (q, k, v))
        attrs = {"q_num_heads": hq, "kv_num_heads": hkv}
    check("Attention", [q, k, v] + extra, attrs, opset=23, outs=outs, rtol=1e-4, atol=1e-5)


def test_rotary_embedding_and_rms_norm():
    x = rand((2, 3, 5, 8), seed=27)
    cos, sin = rand((6, 4), seed=28), rand((6, 4), seed=29)
    pos = np.array([[0, 2, 4, 5, 1], [1, 1, 3, 0, 2]], np.int64)
    for inter in (0, 1):
        check("RotaryEmbedding", [x, cos, sin, pos], {"interleaved": inter}, opset=23)
    check("RMSNormalization", [rand((2, 3, 7), seed=30), rand((7,), seed=31)], {"epsilon": 1e-3}, opset=23)
    check("RMSNormalization", [rand((2, 3, 7), seed=32), rand((3, 7), seed=33)], {"axis": 1}, opset=23)


# ---- bit ops, Det, LRN, pooling, losses ---------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.uint8, np.uint32, np.uint64])  # ORT has no uint16 BitShift
def test_bitshift(dtype):
    a = rand((3, 5), dtype, seed=34, lo=1, hi=200)
    s = rand((3, 5), dtype, seed=35, lo=1, hi=7)
    for d in ("LEFT", "RIGHT"):
        check("BitShift", [a, s], {"direction": d}, opset=13)


@pytest.mark.parametrize("op", ["BitwiseAnd", "BitwiseOr", "BitwiseXor"])
def test_bitwise(op):
    a, b = rand((3, 4), np.int32, seed=36, lo=-1000, hi=1000), rand((4,), np.int32, seed=37, lo=-1000, hi=1000)
    check(op, [a, b], opset=18)
    check("BitwiseNot", [rand((5,), np.uint8, seed=38, lo=1, hi=255)], opset=18)


def test_det_lrn_lppool():
    check("Det", [rand((2, 3, 3), seed=39)], rtol=1e-4)
    check("LRN", [rand((2, 5, 3, 4), seed=40)], {"size": 3, "alpha": 0.01, "beta": 0.6, "bias": 1.5})
    check("LpPool", [rand((1, 2, 7, 6), seed=41)], {"kernel_shape": [3, 2], "p": 3, "pads": [1, 0, 1, 1],
                                                     "strides": [2, 1]}, opset=18, rtol=1e-4)
    check("GlobalLpPool", [rand((2, 3, 5, 4), seed=42)], {"p": 3}, rtol=1e-4)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_losses(reduction):
    x = rand((3, 5, 4), seed=43)
    t = np.array([[0, 4, 2, 1], [3, 3, 1, 0], [2, 1, 4, 4]], np.int64)
    w = rand((5,), seed=44, lo=0.2, hi=1.0)
    check("NegativeLogLikelihoodLoss", [x, t, w], {"reduction": reduction, "ignore_index": 4}, opset=13,
          rtol=1e-4)
    check("SoftmaxCrossEntropyLoss", [x, t], {"reduction": reduction}, opset=13, outs=2, rtol=1e-4)


# ---- edge cases of existing ops the conformance run exercises -------------------------------------
@pytest.mark.parametrize("ta,tb,c_shape", [(0, 0, (5,)), (1, 0, (3, 1)), (0, 1, ()), (1, 1, None)])
def test_gemm_edges(ta, tb, c_shape):
    a = rand((4, 3) if ta else (3, 4), seed=60)
    b = rand((5, 4) if tb else (4, 5), seed=61)
    c = rand(c_shape, seed=62) if c_shape is not None else None
    check("Gemm", [a, b] + ([c] if c is not None else []), {"transA": ta, "transB": tb, "alpha": 0.7, "beta": 1.3},
          opset=13)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax", "Hardmax"])
@pytest.mark.parametrize("opset,axis", [(11, 1), (11, -1), (11, 2), (13, 1), (13, -2)])
def test_softmax_family_axis_semantics(op, opset, axis):
    check(op, [rand((2, 3, 4, 5), seed=63)], {"axis": axis}, opset=opset, rtol=1e-5, atol=1e-6)


def test_activation_edges():
    x = np.concatenate([rand((7,), seed=64, lo=-8, hi=8), np.float32([-30, 30, 3, -3, 0.5])])
    check("Mish", [x], opset=18, rtol=1e-5, atol=1e-6)
    check("HardSwish", [x], opset=14)
    for approx in ("none", "tanh"):
        check("Gelu", [x], {"approximate": approx}, opset=20, rtol=1e-5, atol=1e-6)
