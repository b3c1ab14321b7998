"""Indexed reads and writes against ONNX Runtime (onnx.reference for TensorScatter): Gather*,
Scatter*, TensorScatter, OneHot."""
import numpy as np
import pytest

from tensorforge.testing import rand

try:
    from .node_models import F, I64, C, N, check, check_batches, check_node, infer_shapes
except ImportError:
    from node_models import F, I64, C, N, check, check_batches, check_node, infer_shapes


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


def test_scatter():
    data, idx = rand((3, 5), seed=45), np.array([[1, 0, 4], [2, 3, 0]], np.int64)
    check_node("Scatter", [data, idx, rand((2, 3), seed=46)], {"axis": 1}, opset=10)


def test_tensor_scatter():
    check_node("TensorScatter", [rand((2, 3, 6, 4), seed=29), rand((2, 3, 2, 4), seed=30),
                                 np.array([1, 5], np.int64)], {"mode": "circular"}, opset=24, oracle="onnx")


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
