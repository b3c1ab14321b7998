"""Op coverage part A: TopK, CumSum, Einsum, Trilu, OneHot, NonZero, Compress, EyeLike, Shrink,
ReverseSequence against ONNX Runtime."""
import numpy as np
import pytest
from onnx import TensorProto, helper

from tensorforge.frontend import load
from tensorforge.ir.symbolic import DATA_DEPENDENT_PREFIX, free_symbols
from tensorforge.testing import check_against_ort, make_model, rand, run_ort, run_tf

try:
    from .test_ops_a import I64, C, N, build, check, check_batches, infer_shapes
except ImportError:
    from test_ops_a import I64, C, N, build, check, check_batches, infer_shapes

F = TensorProto.FLOAT


@pytest.mark.parametrize("k,attrs", [(2, {}), (3, {"axis": 0}), (1, {"axis": 1, "largest": 0}),
                                     (5, {"axis": -1, "largest": 1}), (4, {"axis": 2, "largest": 0})])
def test_topk(k, attrs):
    check("TopK", [rand((4, 3, 5)), C([k])], attrs, opset=11, out_types=[F, I64])


def test_topk_unsorted_same_set():
    model, feed = build("TopK", [rand((3, 8)), C([4])], {"sorted": 0}, opset=11, out_types=[F, I64])
    ref, got = run_ort(model, feed), run_tf(model, feed)
    np.testing.assert_allclose(np.sort(got["y0"], -1), np.sort(ref["y0"], -1), rtol=1e-6)


def test_topk_symbolic_batch_and_runtime_k():
    check_batches("TopK", lambda b: [rand((b, 7), seed=b), C([3])], {"axis": 1}, opset=11,
                  out_types=[F, I64])
    # k fed at run time: a shape-tensor input, so the output dim is the symbol of its value
    shapes = infer_shapes("TopK", [rand((2, 7)), np.array([3], np.int64)], {"axis": 1}, opset=11,
                          dyn={0: {0: "N"}}, out_types=[F, I64])
    assert shapes[0][0] == N and not isinstance(shapes[0][1], int)
    assert str(shapes[0][1]).startswith(DATA_DEPENDENT_PREFIX) or "_v0" in str(shapes[0][1])
    _topk_runtime_k()


def _topk_runtime_k():
    """k as a shape-tensor input: built with a profile of k values, run at several k."""
    import tensorforge as tf
    from onnx import TensorProto, helper

    from tensorforge.testing import make_model, run_ort
    m = make_model([helper.make_node("TopK", ["x", "k"], ["v", "i"], axis=1)],
                   [("x", TensorProto.FLOAT, ["N", 7]), ("k", TensorProto.INT64, [1])],
                   [("v", TensorProto.FLOAT, None), ("i", TensorProto.INT64, None)], opset=11)
    prof = tf.OptimizationProfile()
    prof.set_shape("x", (1, 7), (2, 7), (4, 7))
    prof.set_shape_input("k", (1,), (3,), (7,))
    ctx = tf.Builder(tf.BuilderConfig(device="cpu", profiles=[prof])).build(m).create_execution_context()
    for k in (3, 5):
        feed = {"x": rand((2, 7), seed=k), "k": np.array([k], np.int64)}
        got, ref = ctx.infer(feed), run_ort(m, feed)
        np.testing.assert_allclose(got["v"].numpy(), ref["v"], rtol=1e-6)


@pytest.mark.parametrize("attrs", [{}, {"exclusive": 1}, {"reverse": 1}, {"exclusive": 1, "reverse": 1}])
@pytest.mark.parametrize("axis", [0, -1])
def test_cumsum(attrs, axis):
    check("CumSum", [rand((3, 5)), C(axis)], attrs, opset=14)
    check("CumSum", [rand((4, 1, 3), np.int64, lo=-5, hi=5), C(axis, np.int32)], attrs, opset=14)


def test_cumsum_symbolic_batch():
    check_batches("CumSum", lambda b: [rand((b, 6), seed=b), C(1)], {"reverse": 1}, opset=14)


@pytest.mark.parametrize("eq,shapes", [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("ij->ji", [(3, 4)]),
    ("ii->i", [(4, 4)]),
    ("ij,ij", [(3, 4), (3, 4)]),
    ("ba", [(3, 4)]),
    ("...ij,...jk->...ik", [(2, 3, 4), (2, 4, 5)]),
    ("...ij->...ji", [(2, 3, 3, 4)]),
    ("i,j->ij", [(3,), (5,)]),
    ("bhqd, bhkd -> bhqk", [(1, 2, 3, 4), (1, 2, 5, 4)]),
])
def test_einsum(eq, shapes):
    ins = [rand(s, seed=i) for i, s in enumerate(shapes)]
    check("Einsum", ins, {"equation": eq}, opset=12, rtol=1e-5, atol=1e-5)


def test_einsum_symbolic_batch():
    check_batches("Einsum", lambda b: [rand((b, 3, 4), seed=b), rand((b, 4, 2), seed=b + 1)],
                  {"equation": "bij,bjk->bik"}, opset=12, dyn_inputs=(0, 1))
    assert infer_shapes("Einsum", [rand((2, 3)), rand((3, 5))], {"equation": "ij,jk"},
                        dyn={0: {0: "N"}}) == [(N, 5)]


@pytest.mark.parametrize("upper", [0, 1])
@pytest.mark.parametrize("k", [None, 0, 2, -1])
def test_trilu(upper, k):
    ins = [rand((2, 4, 5)), C([k]) if k is not None else None]
    check("Trilu", ins if k is not None else ins[:1], {"upper": upper}, opset=14)


def test_trilu_symbolic_batch():
    check_batches("Trilu", lambda b: [rand((b, 3, 3), seed=b), C([1])], {"upper": 0}, opset=14)


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_onehot(axis):
    idx = np.array([[0, 2, -1], [4, 1, 3]], np.int64)
    check("OneHot", [idx, C([5]), C([-0.5, 2.0], np.float32)], {"axis": axis}, opset=11,
          out_types=[F])
    check("OneHot", [idx, C([6]), C([0, 7])], {"axis": axis}, opset=11, out_types=[I64])
    check("OneHot", [idx.astype(np.int32), C([6.0], np.float32), C([1.5, 7.0], np.float32)], {"axis": axis},
          opset=11, out_types=[F])


def test_onehot_symbolic_batch():
    check_batches("OneHot", lambda b: [(np.arange(b * 2).reshape(b, 2) % 4).astype(np.int64), C([4]),
                                       C([0.0, 1.0], np.float32)], {}, opset=11, out_types=[F])


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 5), (7,)])
def test_nonzero(shape):
    x = rand(shape, np.int64, lo=-1, hi=1, seed=len(shape))
    check("NonZero", [x], opset=13, out_types=[I64])
    check("NonZero", [x.astype(np.float32)], opset=13, out_types=[I64])


def test_nonzero_is_data_dependent_and_feeds_later_layers():
    nodes = [helper.make_node("NonZero", ["x"], ["nz"], name="nz"),
             helper.make_node("Transpose", ["nz"], ["t"], name="tr"),
             helper.make_node("Cast", ["t"], ["y"], to=TensorProto.FLOAT, name="cast")]
    m = make_model(nodes, [("x", F, ["N", 4])], [("y", F, None)], opset=13)
    g = load(m)
    sym = g.values["nz"].shape[1]
    assert g.values["nz"].shape[0] == 2 and str(sym).startswith(DATA_DEPENDENT_PREFIX)
    assert free_symbols(g.outputs[0].shape) == {str(sym)}
    for b in (2, 5):
        x = rand((b, 4), seed=b) * (rand((b, 4), seed=b + 9) > 0)  # some exact zeros
        check_against_ort(m, {"x": x.astype(np.float32)})


def test_shape_of_nonzero_is_computed_at_run_time():
    nodes = [helper.make_node("NonZero", ["x"], ["nz"], name="nz"), helper.make_node("Shape", ["nz"], ["y"])]
    m = make_model(nodes, [("x", F, [3, 4])], [("y", I64, None)], opset=13)
    assert load(m).outputs[0].sym is None  # holds a dd_ symbol: not a build-time shape value
    for seed in (1, 2):
        x = rand((3, 4), seed=seed) * (rand((3, 4), seed=seed + 5) > 0)
        check_against_ort(m, {"x": x.astype(np.float32)})


def test_nonzero_constant_input_folds():
    nodes = [helper.make_node("NonZero", ["c"], ["nz"]), helper.make_node("Shape", ["nz"], ["s"]),
             helper.make_node("Cast", ["s"], ["sf"], to=TensorProto.FLOAT),
             helper.make_node("Add", ["x", "sf"], ["y"])]
    c = helper.make_tensor("c", TensorProto.INT64, [5], [0, 3, 0, 1, 2])
    m = make_model(nodes, [("x", F, [2])], [("y", F, None)], [c], opset=13)
    assert load(m).values["nz"].shape == (1, 3)
    check_against_ort(m, {"x": rand((2,))})


@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_compress(axis):
    x = rand((3, 4))
    cond = np.array([True, False, True], dtype=bool) if axis == 0 else np.array([1, 0, 1, 1], bool)
    attrs = {} if axis is None else {"axis": axis}
    check("Compress", [x, cond], attrs, opset=11)
    check("Compress", [x, C(cond, np.bool_)], attrs, opset=11)  # constant condition: static shape


def test_compress_symbolic_batch():
    check_batches("Compress", lambda b: [rand((b, 5), seed=b), np.array([1, 0, 1, 1, 0], bool)],
                  {"axis": 1}, opset=11)


@pytest.mark.parametrize("attrs,out", [({}, F), ({"k": 1}, F), ({"k": -2, "dtype": TensorProto.INT64}, I64),
                                       ({"dtype": TensorProto.INT32}, TensorProto.INT32)])
@pytest.mark.parametrize("shape", [(3, 3), (2, 5)])
def test_eyelike(attrs, out, shape):
    check("EyeLike", [rand(shape)], attrs, opset=11, out_types=[out])


def test_eyelike_symbolic():
    check_batches("EyeLike", lambda b: [rand((b, 4), seed=b)], {"k": 1}, opset=11)


@pytest.mark.parametrize("attrs", [{}, {"lambd": 0.3}, {"bias": 0.2, "lambd": 0.1}])
def test_shrink(attrs):
    check("Shrink", [rand((3, 7), lo=-2, hi=2)], attrs, opset=11)
    check_batches("Shrink", lambda b: [rand((b, 3), seed=b, lo=-2, hi=2)], attrs, opset=11)


@pytest.mark.parametrize("batch_axis,time_axis", [(1, 0), (0, 1)])
def test_reverse_sequence(batch_axis, time_axis):
    shape = [5, 5, 2]
    shape[batch_axis] = 4
    lens = np.array([1, 5, 3, 2], np.int64)
    attrs = {"batch_axis": batch_axis, "time_axis": time_axis}
    check("ReverseSequence", [rand(tuple(shape)), lens], attrs, opset=11)


def test_reverse_sequence_symbolic_batch():
    check_batches("ReverseSequence", lambda b: [rand((b, 6), seed=b), (np.arange(b) % 6 + 1).astype(np.int64)],
                  {"batch_axis": 0, "time_axis": 1}, opset=11, dyn_inputs=(0, 1))

