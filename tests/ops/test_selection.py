"""Data selection against ONNX Runtime: NonZero (data-dependent shapes), Compress, Unique."""
import numpy as np
import pytest
from onnx import TensorProto, helper

from tensorforge.frontend import load
from tensorforge.ir.symbolic import DATA_DEPENDENT_PREFIX, free_symbols
from tensorforge.testing import check_against_ort, make_model, rand

try:
    from .node_models import F, I64, C, check, check_batches, check_node
except ImportError:
    from node_models import F, I64, C, check, check_batches, check_node


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


def test_unique():
    v = np.array([3, 1, 3, 7, 1, 9, 2, 7], np.int64)
    for srt in (0, 1):
        check_node("Unique", [v], {"sorted": srt}, opset=11, out_types=[I64] * 4)
    check_node("Unique", [np.array([[1, 2], [3, 4], [1, 2], [0, 5]], np.int64)], {"axis": 0}, opset=11,
               out_types=[I64] * 4)
