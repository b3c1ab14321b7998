"""Subgraphs in the IR and the passes: dump, verify, (de)serialization, optimization inside bodies,
build-time If folding, dead captures. Every rewrite is checked with the reference interpreter."""
import numpy as np
import pytest
import torch
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

from tensorforge import frontend, passes
from tensorforge.ir import GraphInvariantError, verify
from tensorforge.ir.attrs import from_json, to_json
from tensorforge.ir.subgraph import hoist_constants, n_formal, subgraphs
from tensorforge.ops.interpreter import run_graph
from tensorforge.testing import make_model, rand

F = T.FLOAT

try:
    from ..ops.test_control_flow import nested_if_model, shape_if_model
except ImportError:  # run as a plain directory
    from tests.ops.test_control_flow import nested_if_model, shape_if_model


def _run(g, feed):
    return [t.numpy() for t in run_graph(g, [torch.from_numpy(feed[v.name]) for v in g.inputs], [], g.opset)]


FEEDS = [{"x": np.abs(rand((3, 8), seed=1)) * sx, "y": np.abs(rand((3, 8), seed=2)) * sy}
         for sx, sy in ((1, 1), (1, -1), (-1, 1))]


def test_loader_closes_bodies_over_outer_values():
    g = frontend.load(nested_if_model())
    verify(g)
    node = next(n for n in g.nodes if n.op == "If")
    assert n_formal(node) == 1 and {v.name for v in node.inputs[1:]} == {"x", "y", "zero", "two"}
    inner = next(n for _, s in subgraphs(node) for n in s.nodes if n.op == "If")
    assert {v.name for v in inner.inputs[n_formal(inner):]} == {"x", "y"}  # nested: through the middle body
    text = g.dump()
    assert "then_branch: graph" in text and "outer  %x" in text and "inner_then" in text


def test_verify_catches_a_broken_capture():
    g = frontend.load(nested_if_model())
    node = next(n for n in g.nodes if n.op == "If")
    g.set_input(node, len(node.inputs) - 1, None)
    del node.inputs[-1]
    with pytest.raises(GraphInvariantError, match="capture"):
        verify(g)


def test_subgraph_json_round_trip_runs_the_same():
    g = frontend.load(nested_if_model())
    hoist_constants(g)
    node = next(n for n in g.nodes if n.op == "If")
    body = node.attrs["then_branch"]
    again = from_json(to_json(body))
    caps = [v.const if v.const is not None else torch.from_numpy(FEEDS[0][v.name])  # hoisted weights: consts
            for v in node.inputs[n_formal(node):]]
    assert any(v.name.endswith("/w") for v in node.inputs[n_formal(node):])
    a, b = run_graph(body, [], caps, g.opset), run_graph(again, [], caps, g.opset)
    torch.testing.assert_close(a[0], b[0], rtol=0, atol=0)


@pytest.mark.parametrize("feed", FEEDS)
def test_pipeline_optimizes_inside_bodies_and_keeps_results(feed):
    before = _run(frontend.load(nested_if_model()), feed)
    g = passes.run_pipeline(frontend.load(nested_if_model()), check=True)
    after = _run(g, feed)
    np.testing.assert_allclose(after[0], before[0], rtol=1e-6, atol=1e-6)
    node = next(n for n in g.nodes if n.op == "If")
    inner = next(n for n in node.attrs["then_branch"].nodes if n.op == "If")
    ops = [n.op for n in inner.attrs["then_branch"].nodes]
    assert ops != ["MatMul", "Add"], ops  # the body's MatMul + Add was fused like any other


def test_fold_if_inlines_the_taken_branch_and_drops_its_dead_captures():
    g = frontend.load(shape_if_model())
    feed = {"x": rand((2, 1, 5), seed=7)}
    before = _run(g, feed)
    g = passes.fold_if(g)
    verify(g)
    assert [n.op for n in g.nodes] == ["Shape", "Gather", "Equal", "Squeeze", "Relu"]
    np.testing.assert_array_equal(_run(g, feed)[0], before[0])


def test_dead_capture_is_dropped_after_body_optimization():
    """A body reads `z = x * 2` only through Shape(z), which folds: z stops being a capture, so its
    producer dies outside."""
    then = h.make_graph([h.make_node("Shape", ["z"], ["s"]), h.make_node("Cast", ["s"], ["sf"], to=F),
                         h.make_node("Add", ["sf", "x"], ["o"])], "then", [],
                        [h.make_tensor_value_info("o", F, None)])
    other = h.make_graph([h.make_node("Identity", ["x"], ["o2"])], "else", [],
                         [h.make_tensor_value_info("o2", F, None)])
    nodes = [h.make_node("Mul", ["x", "two"], ["z"]), h.make_node("ReduceSum", ["x"], ["xs"], keepdims=0),
             h.make_node("Greater", ["xs", "zero"], ["c"]),
             h.make_node("If", ["c"], ["out"], then_branch=then, else_branch=other)]
    inits = [numpy_helper.from_array(np.float32(2), "two"), numpy_helper.from_array(np.float32(0), "zero")]
    model = make_model(nodes, [("x", F, [1])], [("out", F, None)], inits)
    g = passes.run_pipeline(frontend.load(model), check=True)
    node = next(n for n in g.nodes if n.op == "If")
    assert [v.name for v in node.inputs[n_formal(node):]] == ["x"]  # z's Shape folded: z is no capture
    assert not any(n.op == "Mul" for n in g.nodes)  # and its producer died outside
    for x in (1.5, -1.5):
        out = _run(g, {"x": np.array([x], np.float32)})[0]
        np.testing.assert_allclose(out, [x + 1.0] if x > 0 else [x])


def test_loop_with_a_random_body_is_not_folded_at_build_time():
    body = h.make_graph([h.make_node("RandomUniform", [], ["r"], shape=[2]), h.make_node("Add", ["a", "r"], ["a2"]),
                         h.make_node("Identity", ["c"], ["c2"])], "body", [],
                        [h.make_tensor_value_info("c2", T.BOOL, []), h.make_tensor_value_info("a2", F, [2])])
    body.input.extend([h.make_tensor_value_info("i", T.INT64, []), h.make_tensor_value_info("c", T.BOOL, []),
                       h.make_tensor_value_info("a", F, [2])])
    nodes = [h.make_node("Loop", ["M", "", "a0"], ["out"], body=body), h.make_node("Add", ["out", "x"], ["y"])]
    inits = [numpy_helper.from_array(np.int64(3), "M"), numpy_helper.from_array(np.zeros(2, np.float32), "a0")]
    g = passes.run_pipeline(frontend.load(make_model(nodes, [("x", F, [2])], [("y", F, None)], inits)), check=True)
    assert any(n.op == "Loop" for n in g.nodes)


def test_dead_branch_with_an_unsupported_op_is_folded_away():
    then = h.make_graph([h.make_node("Relu", ["x"], ["a"])], "then", [], [h.make_tensor_value_info("a", F, None)])
    other = h.make_graph([h.make_node("NoSuchOp", ["x"], ["b"])], "else", [], [h.make_tensor_value_info("b", F, None)])
    nodes = [h.make_node("Shape", ["x"], ["s"]), h.make_node("Size", ["s"], ["r"]),
             h.make_node("Equal", ["r", "two"], ["c"]),
             h.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)]
    model = make_model(nodes, [("x", F, ["N", 3])], [("y", F, None)], [numpy_helper.from_array(np.int64(2), "two")])
    g = passes.run_pipeline(frontend.load(model), check=True)
    assert [n.op for n in g.nodes] == ["Relu"]


def test_folded_if_keeps_the_graph_output_name():
    then = h.make_graph([h.make_node("Relu", ["x"], ["a"])], "then", [], [h.make_tensor_value_info("a", F, None)])
    other = h.make_graph([h.make_node("Neg", ["x"], ["b"])], "else", [], [h.make_tensor_value_info("b", F, None)])
    nodes = [h.make_node("Shape", ["x"], ["s"]), h.make_node("Size", ["s"], ["r"]),
             h.make_node("Equal", ["r", "two"], ["c"]),
             h.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)]
    model = make_model(nodes, [("x", F, [2, 3])], [("y", F, None)], [numpy_helper.from_array(np.int64(2), "two")])
    g = passes.run_pipeline(frontend.load(model), check=True)
    assert [v.name for v in g.outputs] == ["y"]
    import tensorforge as tf
    eng = tf.Builder(tf.BuilderConfig(device="cpu")).build(model)
    x = rand((2, 3), seed=3)
    np.testing.assert_array_equal(eng.create_execution_context().infer({"x": x})["y"].numpy(), np.maximum(x, 0))


def _pad_if_model():
    """Silero VAD's op18 export in small: each branch pads x with `pads` from an outer initializer,
    then works on it; the branch is picked at run time by an input flag."""
    def branch(name, op, pads):
        return h.make_graph([h.make_node("Pad", ["x", pads], [f"{name}_p"], mode="reflect"),
                             h.make_node(op, [f"{name}_p"], [f"{name}_y"])], name, [],
                            [h.make_tensor_value_info(f"{name}_y", F, None)])
    nodes = [h.make_node("If", ["flag"], ["y"], then_branch=branch("t", "Relu", "pads_a"),
                         else_branch=branch("e", "Neg", "pads_b"))]
    inits = [numpy_helper.from_array(np.array([0, 0, 0, 3], np.int64), "pads_a"),
             numpy_helper.from_array(np.array([0, 0, 0, 3], np.int64), "pads_b")]  # equal: CSE shares them
    return make_model(nodes, [h.make_tensor_value_info("x", F, [1, 16]), h.make_tensor_value_info("flag", T.BOOL, [])],
                      [h.make_tensor_value_info("y", F, None)], inits)


def test_small_constant_captures_become_body_constants():
    """A capture bound to a small outer constant is inlined into the bodies (and the capture dropped):
    a host-read input (Pad's pads) then reads the interpreter's host copy instead of a device tensor,
    which is what lets if_graphs capture the branch. Before, the body's CSE merged the inlined
    constant back into the capture (which carries the same known value)."""
    g = frontend.load(_pad_if_model())
    node = next(n for n in g.nodes if n.op == "If")
    assert len(node.inputs) == 1 + 3  # flag; x, pads_a, pads_b captured
    g = passes.run_pipeline(g)
    node = next(n for n in g.nodes if n.op == "If")
    assert [v.name for v in node.inputs[n_formal(node):]] == ["x"]
    for _, body in subgraphs(node):
        pad = next(n for n in body.nodes if n.op == "Pad")
        assert pad.inputs[1].const is not None and not any(pad.inputs[1] is c for c in body.captures)
        again = from_json(to_json(body))  # as the engine stores it
        pad = next(n for n in again.nodes if n.op == "Pad")
        assert pad.inputs[1].const is not None
        # every host read of the branch is a constant: it runs on tensors without data (no device sync)
        out = run_graph(again, [], [torch.empty(1, 16, device="meta")], again.opset, torch.device("meta"))
        assert out[0].shape == (1, 19)
    x = rand((1, 16), seed=3)
    for flag in (True, False):
        feed = {"x": x, "flag": np.array(flag)}
        want = np.pad(x, ((0, 0), (0, 3)), mode="reflect")
        got = run_graph(g, [torch.from_numpy(feed[v.name]) for v in g.inputs], [], g.opset)[0].numpy()
        np.testing.assert_allclose(got, np.maximum(want, 0) if flag else -want, rtol=1e-6)
