"""If / Loop / Scan against ONNX Runtime on the CPU: nested bodies, outer-scope values, loop-carried
state and scan outputs, scan axes and directions, If folded at build time vs decided at run time."""
import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

import tensorforge as tf
from tensorforge import frontend, passes
from tensorforge.ir import verify
from tensorforge.testing import check_against_ort, make_model, rand

F, I64, B = T.FLOAT, T.INT64, T.BOOL


def _graph(nodes, name, outs, ins=(), inits=()):
    return h.make_graph(nodes, name, [h.make_tensor_value_info(*i) for i in ins],
                        [h.make_tensor_value_info(*o) for o in outs], list(inits))


def nested_if_model(batch=3):
    """out = x > 0 sum ? (y > 0 sum ? x*w + y : x - y) : relu(x) * 2 (w: a branch weight)."""
    w = numpy_helper.from_array(rand((8, 8), seed=3), "w")  # 64 elements: hoisted
    inner_then = _graph([h.make_node("MatMul", ["x", "w"], ["xw"]), h.make_node("Add", ["xw", "y"], ["it"])],
                        "inner_then", [("it", F, None)], inits=[w])
    inner_else = _graph([h.make_node("Sub", ["x", "y"], ["ie"])], "inner_else", [("ie", F, None)])
    outer_then = _graph([h.make_node("ReduceSum", ["y"], ["ys"], keepdims=0),
                         h.make_node("Greater", ["ys", "zero"], ["yc"]),
                         h.make_node("If", ["yc"], ["ot"], then_branch=inner_then, else_branch=inner_else)],
                        "outer_then", [("ot", F, None)])
    outer_else = _graph([h.make_node("Relu", ["x"], ["r"]), h.make_node("Mul", ["r", "two"], ["oe"])],
                        "outer_else", [("oe", F, None)])
    nodes = [h.make_node("ReduceSum", ["x"], ["xs"], keepdims=0), h.make_node("Greater", ["xs", "zero"], ["c"]),
             h.make_node("If", ["c"], ["out"], then_branch=outer_then, else_branch=outer_else)]
    inits = [numpy_helper.from_array(np.float32(0), "zero"), numpy_helper.from_array(np.float32(2), "two")]
    return make_model(nodes, [("x", F, [batch, 8]), ("y", F, [batch, 8])], [("out", F, None)], inits, opset=17)


@pytest.mark.parametrize("sx,sy", [(1, 1), (1, -1), (-1, 1)])
def test_nested_if_with_outer_scope_values(sx, sy):
    x, y = np.abs(rand((3, 8), seed=1)) * sx, np.abs(rand((3, 8), seed=2)) * sy
    check_against_ort(nested_if_model(), {"x": x, "y": y})


def test_symbolic_dims_flow_into_bodies():
    g = frontend.load(nested_if_model("N"))
    node = next(n for n in g.nodes if n.op == "If")
    assert str(node.outputs[0].shape[0]) == "N"  # both branches keep the outer symbolic batch
    inner = next(n for n in node.attrs["then_branch"].nodes if n.op == "If")
    assert str(inner.outputs[0].shape[0]) == "N"
    check_against_ort(nested_if_model("N"), {"x": rand((5, 8), seed=1), "y": -rand((5, 8), seed=2) ** 2})


def loop_model(m_const=None):
    """Carried (sum, prod) over i < M, scan output of each partial sum, early exit when sum > limit."""
    body = _graph([h.make_node("Cast", ["i"], ["fi"], to=F), h.make_node("Add", ["s_in", "fi"], ["s1"]),
                   h.make_node("Mul", ["s1", "x"], ["s_out"]), h.make_node("Add", ["p_in", "x"], ["p_out"]),
                   h.make_node("ReduceSum", ["s_out"], ["tot"], keepdims=0),
                   h.make_node("Less", ["tot", "limit"], ["c_out"]), h.make_node("Identity", ["s_out"], ["scan"])],
                  "body", [("c_out", B, []), ("s_out", F, [2]), ("p_out", F, [2]), ("scan", F, [2])],
                  ins=[("i", I64, []), ("c_in", B, []), ("s_in", F, [2]), ("p_in", F, [2])])
    ins = [("x", F, [2]), ("s0", F, [2]), ("p0", F, [2]), ("limit", F, [])]
    inits = []
    if m_const is None:
        ins.append(("M", I64, []))
    else:
        inits.append(numpy_helper.from_array(np.int64(m_const), "M"))
    nodes = [h.make_node("Constant", [], ["c0"], value=numpy_helper.from_array(np.array(True), "c0")),
             h.make_node("Loop", ["M", "c0", "s0", "p0"], ["s", "p", "scans"], body=body)]
    return make_model(nodes, ins, [("s", F, None), ("p", F, None), ("scans", F, None)], inits, opset=17)


@pytest.mark.parametrize("limit", [1e6, 9.0])
def test_loop_carried_state_and_scan_outputs(limit):
    feed = {"x": np.array([1.5, 0.5], np.float32), "s0": np.array([0.1, 0.2], np.float32),
            "p0": np.array([1.0, -1.0], np.float32), "limit": np.array(limit, np.float32), "M": np.array(5, np.int64)}
    check_against_ort(loop_model(), feed)


def test_loop_const_trip_count_types_scan_output_statically():
    g = frontend.load(loop_model(m_const=4))
    loop = next(n for n in g.nodes if n.op == "Loop")
    assert str(loop.outputs[2].shape[0]).startswith("dd_")  # early exit possible: run-time length
    verify(g)


def scan_model(in_axis=0, in_dir=0, out_axis=0, out_dir=0):
    """Running sum over a scan axis plus a scaled copy of each slice (outer-scope scale)."""
    body = _graph([h.make_node("Add", ["acc", "xt"], ["acc_out"]), h.make_node("Mul", ["xt", "scale"], ["yt"])],
                  "body", [("acc_out", F, None), ("yt", F, None)], ins=[("acc", F, None), ("xt", F, None)])
    nodes = [h.make_node("Scan", ["a0", "x"], ["acc", "ys"], body=body, num_scan_inputs=1,
                         scan_input_axes=[in_axis], scan_input_directions=[in_dir],
                         scan_output_axes=[out_axis], scan_output_directions=[out_dir])]
    inits = [numpy_helper.from_array(np.float32(3.0), "scale")]
    return make_model(nodes, [("a0", F, [3]), ("x", F, [4, 3] if in_axis in (0, -2) else [3, 4])],
                      [("acc", F, None), ("ys", F, None)], inits, opset=17)


@pytest.mark.parametrize("in_axis,in_dir,out_axis,out_dir", [(0, 0, 0, 0), (1, 1, 0, 0), (0, 0, 1, 1),
                                                             (-1, 1, -1, 0)])
def test_scan_axes_and_directions(in_axis, in_dir, out_axis, out_dir):
    x = rand((4, 3) if in_axis == 0 else (3, 4), seed=5)
    check_against_ort(scan_model(in_axis, in_dir, out_axis, out_dir), {"a0": rand((3,), seed=6), "x": x})


def shape_if_model():
    """Exporter pattern: squeeze a dim only when it is 1 (condition on a shape: foldable)."""
    then = _graph([h.make_node("Squeeze", ["x", "ax"], ["sq"])], "then", [("sq", F, None)])
    other = _graph([h.make_node("Identity", ["x"], ["id"])], "else", [("id", F, None)])
    nodes = [h.make_node("Shape", ["x"], ["s"]), h.make_node("Gather", ["s", "one"], ["d"], axis=0),
             h.make_node("Equal", ["d", "one"], ["c"]),
             h.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other),
             h.make_node("Relu", ["y"], ["out"])]
    inits = [numpy_helper.from_array(np.int64(1), "one"), numpy_helper.from_array(np.array([1], np.int64), "ax")]
    return make_model(nodes, [("x", F, [2, 1, 5])], [("out", F, None)], inits, opset=17)


def test_if_on_shapes_is_folded_at_build_time():
    model = shape_if_model()
    g = passes.run_pipeline(frontend.load(model), check=True)
    assert not any(n.op == "If" for n in g.nodes)
    eng = tf.Builder(tf.BuilderConfig(device="cpu")).build(model)
    assert "If" not in [lay.type for lay in eng.plan.layers]
    assert "eager_layers" not in eng.plan.meta
    check_against_ort(model, {"x": rand((2, 1, 5), seed=7)})


def test_if_decided_at_run_time_is_one_eager_layer(tmp_path):
    model = nested_if_model()
    eng = tf.Builder(tf.BuilderConfig(device="cpu")).build(model)
    ifs = [lay for lay in eng.plan.layers if lay.type == "If"]
    assert len(ifs) == 1 and ifs[0].name in eng.plan.meta["eager_layers"]
    # the branch weight lives in the engine's weights (hoisted), not inline in the header
    assert any(name.endswith("/w") for name in eng.weights)
    path = str(tmp_path / "if.engine")
    eng.save(path)
    again = tf.Engine.load(path)
    for sx in (1, -1):
        x, y = np.abs(rand((3, 8), seed=1)) * sx, -np.abs(rand((3, 8), seed=2))
        a = eng.create_execution_context().infer({"x": x, "y": y})["out"].numpy()
        b = again.create_execution_context().infer({"x": x, "y": y})["out"].numpy()
        np.testing.assert_array_equal(a, b)


def test_loop_trip_count_from_a_shape_is_a_symbolic_dim():
    body = _graph([h.make_node("Identity", ["c"], ["c2"]), h.make_node("Add", ["a", "x"], ["a2"]),
                   h.make_node("Identity", ["a2"], ["sc"])], "body",
                  [("c2", B, []), ("a2", F, None), ("sc", F, None)], ins=[("i", I64, []), ("c", B, []), ("a", F, None)])
    nodes = [h.make_node("Shape", ["x"], ["s"]), h.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             h.make_node("Loop", ["n", "", "x"], ["acc", "all"], body=body)]
    model = make_model(nodes, [("x", F, ["N", 2])], [("acc", F, None), ("all", F, None)],
                       [numpy_helper.from_array(np.int64(0), "zero")])
    g = frontend.load(model)
    loop = next(n for n in g.nodes if n.op == "Loop")
    assert str(loop.outputs[1].shape[0]) == "N"
    check_against_ort(model, {"x": rand((3, 2), seed=9)})
