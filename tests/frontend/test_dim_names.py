"""Dim names: anonymous ones ('?', '-1', 'unk__N', '', punctuation) are independent unknowns; a real
name shared by several dims ties them."""
import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as h

import tensorforge as tf
from tensorforge import frontend
from tensorforge.errors import ShapeError
from tensorforge.frontend.onnx_loader import anonymous_dim
from tensorforge.testing import run_ort


def _model(a_dims, b_dims):
    """y = ReduceMean(a, HW) + ReduceSum(b): the two inputs share no dim by construction."""
    nodes = [h.make_node("ReduceMean", ["a", "ax"], ["ma"], keepdims=0),
             h.make_node("ReduceSum", ["b"], ["sb"], keepdims=0), h.make_node("Add", ["ma", "sb"], ["y"])]
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("a", T.FLOAT, a_dims),
                                  h.make_tensor_value_info("b", T.FLOAT, b_dims)],
                     [h.make_tensor_value_info("y", T.FLOAT, None)],
                     [h.make_tensor("ax", T.INT64, [2], [2, 3])])
    return h.make_model(g, opset_imports=[h.make_opsetid("", 18)])


@pytest.mark.parametrize("name", ["?", "-1", "unk__3", "", "_", "None"])
def test_anonymous_names_are_independent(name):
    m = _model([name, 3, name, name], [name])
    g = frontend.load(m)
    a, b = g.inputs
    assert len({*a.shape[:1], *a.shape[2:], *b.shape}) == 4  # four different unknowns
    ctx = tf.Builder(tf.BuilderConfig(device="cpu")).build(m).create_execution_context()
    rng = np.random.default_rng(0)
    for shp, n in (((2, 3, 48, 192), 5), ((1, 3, 7, 3), 1)):
        feed = {"a": rng.standard_normal(shp).astype(np.float32), "b": rng.standard_normal(n).astype(np.float32)}
        np.testing.assert_allclose(ctx.infer(feed)["y"].numpy(), run_ort(m, feed)["y"], rtol=1e-5, atol=1e-5)


def test_real_shared_names_tie_dims():
    m = _model(["N", 3, "H", "H"], ["N"])
    a, b = frontend.load(m).inputs
    assert a.shape[2] == a.shape[3] and a.shape[0] == b.shape[0]
    ctx = tf.Builder(tf.BuilderConfig(device="cpu")).build(m).create_execution_context()
    with pytest.raises(ShapeError, match="is 192 but 'H' is 48 elsewhere"):
        ctx.infer({"a": np.zeros((2, 3, 48, 192), np.float32), "b": np.zeros(2, np.float32)})


def test_anonymous_dim_names():
    assert all(anonymous_dim(s) for s in ("", "?", " ? ", "-1", "0", "unk__12", "_", "*", "None", "null"))
    assert not any(anonymous_dim(s) for s in ("N", "batch", "height", "unk__", "d0", "s_1", "seq_len"))
