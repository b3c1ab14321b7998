"""Op coverage part A: reductions and ArgMax/ArgMin against ONNX Runtime, plus shape inference.

The helpers here (`C`, `check`, `check_batches`, `infer_shapes`) are shared by test_ops_a_*.py."""
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from tensorforge.frontend import load
from tensorforge.ir.symbolic import symbol
from tensorforge.testing import check_against_ort, make_model, rand

F, I64 = TensorProto.FLOAT, TensorProto.INT64
_NP2ONNX = {np.float32: F, np.int64: I64, np.int32: TensorProto.INT32, np.bool_: TensorProto.BOOL,
            np.float16: TensorProto.FLOAT16, np.float64: TensorProto.DOUBLE, np.uint8: TensorProto.UINT8}


class C:
    """A constant (initializer) input of the node under test."""

    def __init__(self, data, dtype=np.int64):
        self.data = np.asarray(data, dtype=dtype)


def onnx_type(arr):
    return _NP2ONNX[np.asarray(arr).dtype.type]


def build(op, ins, attrs=None, opset=17, n_out=1, out_types=None, dyn=None):
    """A one-node model; ins: arrays (graph inputs), C(...) (initializers) or None (omitted)."""
    names, graph_in, inits, feed = [], [], [], {}
    for i, x in enumerate(ins):
        if x is None:
            names.append("")
        elif isinstance(x, C):
            names.append(f"c{i}")
            inits.append(numpy_helper.from_array(x.data, f"c{i}"))
        else:
            names.append(f"x{i}")
            shape = list(np.shape(x))
            for d, sym in (dyn or {}).get(i, {}).items():
                shape[d] = sym
            graph_in.append((f"x{i}", onnx_type(x), shape))
            feed[f"x{i}"] = x
    out_types = out_types or [onnx_type(next(x for x in ins if x is not None and not isinstance(x, C)))] * n_out
    outs = [(f"y{j}", t, None) for j, t in enumerate(out_types)]
    node = helper.make_node(op, names, [o[0] for o in outs], name=f"{op.lower()}_node", **(attrs or {}))
    return make_model([node], graph_in, outs, inits, opset=opset), feed


def check(op, ins, attrs=None, opset=17, rtol=1e-5, atol=1e-5, **kw):
    """Build a one-node model and compare tensorforge with ORT on the given inputs."""
    model, feed = build(op, ins, attrs, opset, **kw)
    return check_against_ort(model, feed, rtol=rtol, atol=atol)


def check_batches(op, make_ins, attrs=None, opset=17, batches=(2, 5), dyn_inputs=(0,), rtol=1e-5, atol=1e-5,
                  **kw):
    """One model with a symbolic batch dim 'N' on the given inputs, run at two batch sizes."""
    dyn = {i: {0: "N"} for i in dyn_inputs}
    model, _ = build(op, make_ins(batches[0]), attrs, opset, dyn=dyn, **kw)
    for b in batches:
        _, feed = build(op, make_ins(b), attrs, opset, dyn=dyn, **kw)
        check_against_ort(model, feed, rtol=rtol, atol=atol)


def infer_shapes(op, ins, attrs=None, opset=17, dyn=None, **kw):
    """Output shapes as tensorforge infers them (symbolic dims stay sympy expressions)."""
    model, _ = build(op, ins, attrs, opset, dyn=dyn, **kw)
    g = load(model)
    return [v.shape for v in g.outputs]


N = symbol("N")
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
