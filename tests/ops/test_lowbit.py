"""Sub-byte types: packed int4/uint4 initializers decode on load; blocked Q/DQ into them agree with ORT."""
import ml_dtypes
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from tensorforge import dtypes
from tensorforge.testing import assert_close, rand, run_ort, run_tf


@pytest.mark.parametrize("qt,np_t,zp", [(TensorProto.INT4, ml_dtypes.int4, -2), (TensorProto.UINT4, ml_dtypes.uint4, 8)])
def test_blocked_int4_weight_dequantize_matmul(qt, np_t, zp):
    """A 4-bit weight (packed two per byte in the file) with block-wise scales along K feeds a MatMul."""
    k, n, bs = 8, 6, 4
    lo, hi = (-8, 7) if qt == TensorProto.INT4 else (0, 15)
    w = np.random.default_rng(0).integers(lo, hi + 1, (k, n))
    w_t = helper.make_tensor("w", qt, [k, n], w.flatten().tolist())
    s = numpy_helper.from_array(rand((k // bs, n), seed=1, lo=0.01, hi=0.1), "s")
    z = helper.make_tensor("z", qt, [k // bs, n], [zp] * (k // bs * n))
    nodes = [helper.make_node("DequantizeLinear", ["w", "s", "z"], ["wd"], axis=0, block_size=bs),
             helper.make_node("MatMul", ["x", "wd"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, k])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w_t, s, z])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    feed = {"x": rand((3, k), seed=2)}
    assert_close(run_tf(m, feed), run_ort(m, feed), 1e-5, 1e-5)


def test_quantize_to_uint4_blocked():
    x = rand((4, 8), lo=-2, hi=2)
    s = numpy_helper.from_array(rand((4, 2), seed=1, lo=0.1, hi=0.3), "s")
    z = helper.make_tensor("z", TensorProto.UINT4, [4, 2], [8] * 8)
    node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], axis=1, block_size=4)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8])],
                          [helper.make_tensor_value_info("q", TensorProto.UINT4, None)], [s, z])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    from tensorforge.backend import TensorforgeBackend
    (got,) = TensorforgeBackend.prepare(m, "CPU").run([x])
    from onnx.reference import ReferenceEvaluator  # ORT cannot hand uint4 outputs to numpy
    (want,) = ReferenceEvaluator(m).run(None, {"x": x})
    assert got.dtype == want.dtype and np.array_equal(got.astype(np.int32), want.astype(np.int32))


def test_storage_types_round_trip():
    """Sub-byte values live in a wider storage type and come back as ml_dtypes arrays."""
    for name, ml in (("int4", ml_dtypes.int4), ("uint2", ml_dtypes.uint2), ("float4e2m1", ml_dtypes.float4_e2m1fn)):
        a = np.array([0, 1, -1, 2] if name != "uint2" else [0, 1, 2, 3]).astype(ml)
        t = dtypes.ml_to_torch(a, name)
        assert t.dtype == dtypes.to_torch(name) and name in dtypes.STORAGE_ONLY
        back = dtypes.torch_to_ml(t, name)
        assert back.dtype == a.dtype and np.array_equal(back.astype(np.float32), a.astype(np.float32))
    assert dtypes.from_torch(dtypes.to_torch("int4")) == "int8"  # storage types are never inferred back


def test_packed_size_matches_onnx_helper():
    from onnx import helper as h
    for qt, name, vals in ((TensorProto.INT4, "int4", [1, -2, 3]), (TensorProto.UINT2, "uint2", [1, 2, 3, 0, 1])):
        raw = h.make_tensor("t", qt, [len(vals)], vals, raw=False)
        assert len(raw.int32_data) == dtypes.packed_size(name, len(vals))
    assert dtypes.packed_size("int8", 3) is None
