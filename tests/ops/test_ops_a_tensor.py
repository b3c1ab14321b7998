"""Op coverage part A: Split, Tile, Pad, DepthToSpace, SpaceToDepth, GatherElements, GatherND,
ScatterND, ScatterElements against ONNX Runtime."""
import numpy as np
import pytest
import sympy
from onnx import TensorProto, helper

from tensorforge.frontend import load
from tensorforge.testing import check_against_ort, make_model, rand

try:
    from .test_ops_a import C, N, check, check_batches, infer_shapes
except ImportError:
    from test_ops_a import C, N, check, check_batches, infer_shapes

F = TensorProto.FLOAT


# ---- Split -------------------------------------------------------------------------------------
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


# ---- Tile --------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,reps", [((2, 3), [2, 1]), ((3, 1, 2), [1, 3, 2]), ((5,), [3])])
def test_tile(shape, reps):
    check("Tile", [rand(shape), C(reps)], opset=13)


def test_tile_symbolic_batch():
    check_batches("Tile", lambda b: [rand((b, 3), seed=b), C([2, 2])], opset=13)
    assert infer_shapes("Tile", [rand((2, 3)), C([3, 1])], dyn={0: {0: "N"}}) == [(3 * N, 3)]


# ---- Pad ---------------------------------------------------------------------------------------
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


# ---- DepthToSpace / SpaceToDepth --------------------------------------------------------------
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


# ---- GatherElements / GatherND -------------------------------------------------------------------
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather_elements(axis):
    x = rand((3, 4, 2))
    n = x.shape[axis]
    idx_shape = [2, 3, 2]
    idx = rand(tuple(idx_shape), np.int64, lo=-n, hi=n - 1, seed=axis + 3)
    check("GatherElements", [x, idx], {"axis": axis}, opset=13)
    check("GatherElements", [x, C(idx)], {"axis": axis}, opset=13)


def test_gather_elements_symbolic_batch():
    check_batches("GatherElements", lambda b: [rand((b, 5), seed=b), (np.arange(b * 3).reshape(b, 3) % 5)],
                  {"axis": 1}, opset=13, dyn_inputs=(0, 1))


@pytest.mark.parametrize("data_shape,idx,batch_dims", [
    ((2, 2), [[0, 0], [1, 1]], 0),
    ((2, 2), [[1], [0]], 0),
    ((2, 3, 4), [[[0, 1]], [[1, -1]]], 0),
    ((2, 3, 4), [[1], [0]], 1),
    ((2, 3, 4), [[[1, 2], [0, 3]], [[2, 0], [1, 1]]], 1),
    ((2, 3, 4, 2), [[[1], [2], [0]], [[3], [-1], [0]]], 2),
])
def test_gather_nd(data_shape, idx, batch_dims):
    idx = np.array(idx, np.int64)
    check("GatherND", [rand(data_shape), idx], {"batch_dims": batch_dims}, opset=13)


def test_gather_nd_symbolic_batch():
    check_batches("GatherND", lambda b: [rand((b, 4, 3), seed=b), (np.arange(b) % 4).reshape(b, 1)],
                  {"batch_dims": 1}, opset=13, dyn_inputs=(0, 1))
    assert infer_shapes("GatherND", [rand((2, 4, 3)), np.zeros((2, 1), np.int64)], {"batch_dims": 1},
                        dyn={0: {0: "N"}, 1: {0: "N"}}) == [(N, 3)]


# ---- ScatterND / ScatterElements -------------------------------------------------------------------
@pytest.mark.parametrize("reduction", [None, "add", "mul", "max", "min"])
def test_scatter_nd(reduction):
    attrs = {} if reduction is None else {"reduction": reduction}
    idx = np.array([[1], [3]], np.int64) if reduction is None else np.array([[1], [3], [1]], np.int64)
    upd = rand((len(idx), 3), seed=4)
    check("ScatterND", [rand((4, 3)), idx, upd], attrs, opset=18)
    idx2 = np.array([[0, 2], [1, -1]], np.int64)
    check("ScatterND", [rand((2, 3, 2)), C(idx2), rand((2, 2), seed=5)], attrs, opset=18)


def test_scatter_nd_symbolic_batch():
    check_batches("ScatterND", lambda b: [rand((b, 3), seed=b), np.array([[0]], np.int64), rand((1, 3))],
                  {}, opset=13)


@pytest.mark.parametrize("reduction", [None, "add", "mul", "max", "min"])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_scatter_elements(reduction, axis):
    attrs = {"axis": axis} if reduction is None else {"axis": axis, "reduction": reduction}
    x = rand((3, 4))
    n = x.shape[axis]
    if reduction is None:  # unique targets per row/col: plain assignment is deterministic
        idx = np.stack([np.random.default_rng(i).permutation(n)[:2] for i in range(3 if axis == 1 or axis == -1
                                                                                     else 4)])
        idx = np.ascontiguousarray(idx if axis != 0 else idx.T)  # feeds must be C-contiguous
    else:
        idx = rand((2, 3) if axis == 0 else (3, 2), np.int64, lo=-n, hi=n - 1, seed=7)
    check("ScatterElements", [x, idx.astype(np.int64), rand(idx.shape, seed=8)], attrs, opset=18)


def test_scatter_elements_symbolic_batch():
    check_batches("ScatterElements", lambda b: [rand((b, 4), seed=b), np.ones((b, 1), np.int64),
                                                rand((b, 1), seed=b + 1)],
                  {"axis": 1, "reduction": "add"}, opset=16, dyn_inputs=(0, 1, 2))
