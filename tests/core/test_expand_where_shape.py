"""torch's ONNX export of `t.expand(batch, -1, ...)` (BERT token_type_ids, ViT class token) computes the
Expand target as Where(Equal(shape, -1 * ones), ones, shape) over a symbolic batch: the frontend must
resolve it to a symbolic shape (it used to stop with "target shape is data-dependent")."""
import numpy as np
from onnx import TensorProto, helper, numpy_helper

from tensorforge.testing import check_against_ort, make_model


def _c(name, vals):
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.array(vals, np.int64), name))


def test_expand_of_where_equal_shape_pattern():
    nodes = [
        helper.make_node("Shape", ["x"], ["sx"]), _c("zero", 0), _c("ax0", [0]), _c("m1", [-1]), _c("neg", -1),
        helper.make_node("Gather", ["sx", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "ax0"], ["n1"]),
        helper.make_node("Concat", ["n1", "m1", "m1"], ["tgt"], axis=0),           # [N, -1, -1]
        helper.make_node("Shape", ["tgt"], ["st"]),
        helper.make_node("ConstantOfShape", ["st"], ["ones"], value=numpy_helper.from_array(np.array([1], np.int64))),
        helper.make_node("Mul", ["ones", "neg"], ["minus"]),
        helper.make_node("Equal", ["tgt", "minus"], ["is_m1"]),
        helper.make_node("Where", ["is_m1", "ones", "tgt"], ["shape"]),              # [N, 1, 1]
        helper.make_node("Expand", ["cls", "shape"], ["tok"]),                       # [N, 1, 8]
        helper.make_node("Concat", ["tok", "x"], ["y"], axis=1),
    ]
    cls = numpy_helper.from_array(np.linspace(-1, 1, 8, dtype=np.float32).reshape(1, 1, 8), "cls")
    m = make_model(nodes, [("x", TensorProto.FLOAT, ["N", 3, 8])], [("y", TensorProto.FLOAT, None)], [cls])
    for n in (1, 4):
        x = np.random.default_rng(n).uniform(-1, 1, (n, 3, 8)).astype(np.float32)
        got = check_against_ort(m, {"x": x})
        assert got["y"].shape == (n, 4, 8)
