"""Reductions against ONNX Runtime: Reduce* (axes attribute and input forms), ArgMax/ArgMin, TopK,
plus shape inference with a symbolic batch."""
import numpy as np
import pytest
from onnx import helper

from tensorforge.frontend import load
from tensorforge.ir.symbolic import DATA_DEPENDENT_PREFIX
from tensorforge.testing import check_against_ort, make_model, rand, run_ort, run_tf

try:
    from .node_models import F, I64, C, N, build, check, check_batches, infer_shapes
except ImportError:
    from node_models import F, I64, C, N, build, check, check_batches, infer_shapes


REDUCE_OPS = ["ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
              "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"]


_POSITIVE = {"ReduceLogSum"}  # log of a sum needs positive data


def _reduce_in(op, shape, seed=0):
    lo = 0.1 if op in _POSITIVE else -1.0
    return rand(shape, seed=seed, lo=lo, hi=1.0)


def _axes_opset(op):
    return 13 if op == "ReduceSum" else 18


@pytest.mark.parametrize("op", REDUCE_OPS)
@pytest.mark.parametrize("axes,keepdims", [([1], 1), ([0, 2], 0), ([-1], 0), (None, 1), (None, 0)])
def test_reduce_axes_attribute(op, axes, keepdims):
    attrs = {"keepdims": keepdims}
    if axes is not None:
        attrs["axes"] = axes
    check(op, [_reduce_in(op, (3, 4, 5))], attrs, opset=_axes_opset(op) - 1)


@pytest.mark.parametrize("op", REDUCE_OPS)
@pytest.mark.parametrize("axes,keepdims,noop", [([1], 1, 0), ([0, -1], 0, 0), (None, 0, 0), ([], 1, 0),
                                                 (None, 1, 1)])
def test_reduce_axes_input(op, axes, keepdims, noop):
    ins = [_reduce_in(op, (2, 3, 7)), None if axes is None else C(axes)]
    if axes is None:
        ins = ins[:1]
    attrs = {"keepdims": keepdims, "noop_with_empty_axes": noop}
    check(op, ins, attrs, opset=_axes_opset(op))


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd"])
def test_reduce_int64(op):
    x = rand((3, 5), np.int64, lo=-4, hi=4)
    check(op, [x, C([1])], {"keepdims": 0}, opset=18)


@pytest.mark.parametrize("op", ["ReduceMean", "ReduceLogSumExp", "ReduceL2"])
def test_reduce_symbolic_batch(op):
    check_batches(op, lambda b: [_reduce_in(op, (b, 3, 5), seed=b), C([1, 2])], {"keepdims": 0}, opset=18)


@pytest.mark.parametrize("keepdims,expected", [(1, (N, 1, 5)), (0, (N, 5))])
def test_reduce_infer_symbolic(keepdims, expected):
    got = infer_shapes("ReduceMean", [rand((2, 3, 5)), C([1])], {"keepdims": keepdims}, opset=18,
                       dyn={0: {0: "N"}})
    assert got == [expected]


def test_reduce_attr_form_infer_and_all_axes():
    assert infer_shapes("ReduceSum", [rand((2, 3))], {"axes": [0], "keepdims": 0}, opset=11,
                        dyn={0: {0: "N"}}) == [(3,)]
    assert infer_shapes("ReduceMax", [rand((2, 3))], {"keepdims": 0}, opset=18, dyn={0: {0: "N"}}) == [()]


def test_reduceprod_of_shape_is_symbolic_numel():
    """ReduceProd(Shape(x)) feeds a Reshape: the numel must stay symbolic (N*12)."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("ReduceProd", ["s"], ["n"], keepdims=1),
             helper.make_node("Reshape", ["x", "n"], ["y"])]
    m = make_model(nodes, [("x", F, ["N", 3, 4])], [("y", F, None)], opset=17)
    g = load(m)
    assert g.outputs[0].shape == (N * 12,)
    for b in (1, 3):
        check_against_ort(m, {"x": rand((b, 3, 4), seed=b)})


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("attrs", [{}, {"axis": 1}, {"axis": -1, "keepdims": 0},
                                   {"axis": 0, "select_last_index": 1}, {"axis": 2, "select_last_index": 1,
                                                                         "keepdims": 0}])
def test_argmax_argmin(op, attrs):
    ties = rand((4, 3, 5), np.int64, lo=0, hi=2).astype(np.float32)  # many ties: index choice matters
    check(op, [ties], attrs, opset=13, out_types=[I64])
    check(op, [rand((3, 1, 7), seed=1)], attrs, opset=13, out_types=[I64])


def test_argmax_symbolic_batch():
    check_batches("ArgMax", lambda b: [rand((b, 6), seed=b)], {"axis": 1, "keepdims": 0}, opset=13,
                  out_types=[I64])
    assert infer_shapes("ArgMax", [rand((2, 6))], {"axis": 1}, dyn={0: {0: "N"}}, out_types=[I64]) == [(N, 1)]


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
