"""Tensor ops against ONNX Runtime (onnx.reference for BitCast): Split, Tile, Pad, Trilu,
ReverseSequence, BitCast."""
import numpy as np
import pytest
import sympy
from onnx import TensorProto, helper

from tensorforge.frontend import load
from tensorforge.testing import check_against_ort, make_model, rand

try:
    from .node_models import F, C, N, check, check_batches, check_node, infer_shapes
except ImportError:
    from node_models import F, C, N, check, check_batches, check_node, infer_shapes


@pytest.mark.parametrize("attrs,n_out", [({"axis": 1, "split": [1, 3]}, 2), ({"axis": 0}, 3),
                                         ({"axis": -1, "split": [2, 2, 1]}, 3)])
def test_split_attribute_form(attrs, n_out):
    check("Split", [rand((6, 4, 5))], attrs, opset=11, n_out=n_out)


@pytest.mark.parametrize("split,n_out,axis", [([2, 3], 2, 2), (None, 2, 0), ([1, 1, 2], 3, 1)])
def test_split_input_form(split, n_out, axis):
    ins = [rand((4, 4, 5))] + ([C(split)] if split is not None else [])
    check("Split", ins, {"axis": axis}, opset=13, n_out=n_out)


@pytest.mark.parametrize("shape,num_outputs", [((7, 3), 3), ((6, 2), 3), ((5, 4), 2)])
def test_split_num_outputs_uneven(shape, num_outputs):
    check("Split", [rand(shape)], {"axis": 0, "num_outputs": num_outputs}, opset=18, n_out=num_outputs)


def test_split_symbolic_batch():
    check_batches("Split", lambda b: [rand((b, 6), seed=b), C([2, 4])], {"axis": 1}, opset=13, n_out=2)
    check_batches("Split", lambda b: [rand((b * 2, 3), seed=b)], {"axis": 0}, opset=13, n_out=2)
    shapes = infer_shapes("Split", [rand((4, 3))], {"axis": 0, "num_outputs": 2}, opset=18,
                          dyn={0: {0: "N"}}, n_out=2)
    half = sympy.ceiling(N / 2)
    assert shapes == [(half, 3), (N - half, 3)]


def test_split_of_shape_tensor_stays_symbolic():
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Split", ["s"], ["a", "b"], axis=0),
             helper.make_node("Concat", ["b", "a"], ["t"], axis=0),
             helper.make_node("Reshape", ["x", "t"], ["y"])]
    m = make_model(nodes, [("x", F, ["N", 6])], [("y", F, None)], opset=13)
    assert load(m).outputs[0].shape == (6, N)
    check_against_ort(m, {"x": rand((3, 6))})


@pytest.mark.parametrize("shape,reps", [((2, 3), [2, 1]), ((3, 1, 2), [1, 3, 2]), ((5,), [3])])
def test_tile(shape, reps):
    check("Tile", [rand(shape), C(reps)], opset=13)


def test_tile_symbolic_batch():
    check_batches("Tile", lambda b: [rand((b, 3), seed=b), C([2, 2])], opset=13)
    assert infer_shapes("Tile", [rand((2, 3)), C([3, 1])], dyn={0: {0: "N"}}) == [(3 * N, 3)]


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
@pytest.mark.parametrize("pads", [[0, 1, 2, 1, 0, 2], [1, 0, 0, 0, 2, 1], [0, -1, 1, 0, 1, -1]])
def test_pad_modes(mode, pads):
    check("Pad", [rand((2, 4, 5)), C(pads)], {"mode": mode}, opset=19)


def test_pad_constant_value_and_axes():
    check("Pad", [rand((3, 4)), C([1, 2, 2, 0]), C(1.5, np.float32)], {}, opset=11)
    check("Pad", [rand((2, 3, 4)), C([1, 2, 0, 1]), C(-2.0, np.float32), C([0, -1])], {}, opset=18)
    check("Pad", [rand((2, 3, 4)), C([2, 1]), None, C([1])], {"mode": "reflect"}, opset=18)
    check("Pad", [rand((3, 4), np.int64, lo=-9, hi=9), C([1, 1, 1, 1]), C(7)], {}, opset=13)


def test_pad_attribute_form_opset10():
    check("Pad", [rand((2, 3))], {"pads": [1, 0, 0, 2], "value": 1.5}, opset=10)
    check("Pad", [rand((2, 3))], {"pads": [0, 1, 1, 1], "mode": "reflect"}, opset=10)


def test_pad_symbolic_batch():
    check_batches("Pad", lambda b: [rand((b, 3, 4), seed=b), C([0, 1, 1, 0, 1, 2])], {"mode": "edge"},
                  opset=13)
    assert infer_shapes("Pad", [rand((2, 3)), C([1, 0, 2, 1])], opset=13, dyn={0: {0: "N"}}) == [(N + 3, 4)]


@pytest.mark.parametrize("upper", [0, 1])
@pytest.mark.parametrize("k", [None, 0, 2, -1])
def test_trilu(upper, k):
    ins = [rand((2, 4, 5)), C([k]) if k is not None else None]
    check("Trilu", ins if k is not None else ins[:1], {"upper": upper}, opset=14)


def test_trilu_symbolic_batch():
    check_batches("Trilu", lambda b: [rand((b, 3, 3), seed=b), C([1])], {"upper": 0}, opset=14)


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


def test_bitcast():
    check_node("BitCast", [rand((3, 4), seed=31)], {"to": TensorProto.INT32}, opset=26,
               out_types=[TensorProto.INT32], oracle="onnx")


@pytest.mark.parametrize("shape,axis", [((0, 3, 4, 4), 1), ((2, 0, 5), 2), ((3, 4, 0), 1), ((0, 2), 0)])
def test_flatten_of_empty_tensors(shape, axis):
    """A zero-size input flattens to its known 2-D shape (a -1 would be ambiguous at 0 elements)."""
    check("Flatten", [rand(shape)], {"axis": axis})
