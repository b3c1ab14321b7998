"""ai.onnx.ml TreeEnsemble against onnx's reference evaluator: several trees, every comparison mode,
set membership, missing values and each aggregation."""
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from tensorforge.backend import TensorforgeBackend

# two trees over 3 features; node 0..2: tree 0 (root 0), nodes 3..4: tree 1 (root 3)
ATTRS = dict(
    nodes_featureids=[0, 1, 2, 1, 0], nodes_truenodeids=[1, 0, 1, 4, 2], nodes_trueleafs=[0, 1, 1, 0, 1],
    nodes_falsenodeids=[2, 1, 2, 3, 3], nodes_falseleafs=[0, 1, 1, 1, 1],
    leaf_targetids=[0, 1, 0, 1, 2], leaf_weights=numpy_helper.from_array(np.float32([1.5, -2.0, 3.25, 4.0, 0.5])),
    nodes_splits=numpy_helper.from_array(np.float32([0.1, -0.3, np.nan, 0.2, 0.0])),
    membership_values=numpy_helper.from_array(np.float32([0.5, 1.0, np.nan])),
    nodes_missing_value_tracks_true=[1, 0, 0, 1, 0], tree_roots=[0, 3], n_targets=3, post_transform=0)


@pytest.mark.parametrize("modes", [[0, 1, 6, 2, 3], [4, 5, 6, 0, 1], [3, 2, 6, 5, 4]])
@pytest.mark.parametrize("agg", [0, 1, 2, 3])
def test_tree_ensemble_matches_onnx_reference(modes, agg):
    x = np.random.default_rng(0).choice(np.float32([-1, -0.3, 0, 0.1, 0.2, 0.5, 1.0, np.nan]), (16, 3))
    node = helper.make_node("TreeEnsemble", ["x"], ["y"], domain="ai.onnx.ml", aggregate_function=agg,
                            nodes_modes=numpy_helper.from_array(np.uint8(modes)), **ATTRS)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [16, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("ai.onnx.ml", 5)],
                          ir_version=10)
    (want,) = ReferenceEvaluator(m).run(None, {"x": x})
    (got,) = TensorforgeBackend.prepare(m, "CPU").run([x])
    np.testing.assert_allclose(got, want, rtol=1e-6)
