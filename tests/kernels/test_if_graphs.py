"""Tactic if_graphs (kernels/aten/control.py): the branch of a run-time If chosen on the host and
replayed from a capture of its own per (branch, input signature). Here on the CPU with a stand-in for the
CUDA capture whose replay recomputes from the static inputs, as a graph replay does; the real capture runs
in tests/gpu/test_control_flow_gpu.py."""
import numpy as np
import pytest
import torch
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

from tensorforge import frontend
from tensorforge.kernels.aten.control import MAX_KEYS, BranchGraphs, control_candidates
from tensorforge.ops.interpreter import run_graph
from tensorforge.testing import make_model, rand

F = T.FLOAT


def _graph(nodes, name, outs, inits=()):
    return h.make_graph(nodes, name, [], [h.make_tensor_value_info(*o) for o in outs], list(inits))


def if_model(batch="N"):
    """out = sum(x) > 0 ? x @ w + y : x - y."""
    w = numpy_helper.from_array(rand((8, 8), seed=3), "w")
    then = _graph([h.make_node("MatMul", ["x", "w"], ["xw"]), h.make_node("Add", ["xw", "y"], ["t"])],
                  "then", [("t", F, None)], inits=[w])
    other = _graph([h.make_node("Sub", ["x", "y"], ["e"])], "else", [("e", F, None)])
    nodes = [h.make_node("ReduceSum", ["x"], ["xs"], keepdims=0), h.make_node("Greater", ["xs", "zero"], ["c"]),
             h.make_node("If", ["c"], ["out"], then_branch=then, else_branch=other)]
    return make_model(nodes, [("x", F, [batch, 8]), ("y", F, [batch, 8])], [("out", F, None)],
                      [numpy_helper.from_array(np.float32(0), "zero")], opset=17)


class FakeCapture:
    """capture(fn, static_in) -> (replay, outs): replay recomputes fn from static_in into outs."""

    def __init__(self, fail=False):
        self.calls, self.fail = 0, fail

    def __call__(self, fn, static_in):
        self.calls += 1
        if self.fail:
            raise RuntimeError("operation not permitted when stream is capturing")
        outs = fn(static_in)
        return (lambda: [o.copy_(n) for o, n in zip(outs, fn(static_in))]), outs


def _kernel(capture):
    g = frontend.load(if_model())
    node = next(n for n in g.nodes if n.op == "If")
    return BranchGraphs(node.attrs, 17, torch.device("cpu"), capture=capture), node


def _ref(node, cond, x, y):
    b = node.attrs["then_branch" if cond else "else_branch"]
    return run_graph(b, [], [x, y], 17, torch.device("cpu"))[0]


def _call(k, node, n=3, sign=1.0, seed=0):
    x, y = torch.from_numpy(np.abs(rand((n, 8), seed=seed)) * sign), torch.from_numpy(rand((n, 8), seed=seed + 1))
    cond = torch.tensor(bool(x.sum() > 0))
    got = k([cond, x, y])
    torch.testing.assert_close(got[0], _ref(node, bool(cond), x, y), rtol=0, atol=0)
    return got


def test_each_branch_captured_at_its_second_run_and_replayed():
    cap = FakeCapture()
    k, node = _kernel(cap)
    for i in range(4):
        _call(k, node, seed=10 + i)  # new inputs every call: the replay reads the copied-in values
    assert cap.calls == 1
    for i in range(3):
        _call(k, node, sign=-1.0, seed=20 + i)
    assert cap.calls == 2 and len(k.graphs) == 2
    _call(k, node, n=5, seed=30)  # another input shape: another key, eager at its first run
    assert cap.calls == 2
    _call(k, node, n=5, seed=31)
    assert cap.calls == 3


def test_outputs_are_copies_of_the_graph_outputs():
    k, node = _kernel(FakeCapture())
    for i in range(2):
        _call(k, node, seed=40 + i)
    first = _call(k, node, seed=42)[0]
    kept = first.clone()
    _call(k, node, seed=43)
    assert torch.equal(first, kept)  # a later replay did not overwrite what an earlier call returned


def test_a_failed_capture_runs_the_branch_eagerly_for_good():
    cap = FakeCapture(fail=True)
    k, node = _kernel(cap)
    for i in range(5):
        _call(k, node, seed=50 + i)
    assert cap.calls == 1 and list(k.graphs.values()) == [None]


def test_captured_keys_are_bounded():
    cap = FakeCapture()
    k, node = _kernel(cap)
    for n in range(1, MAX_KEYS + 3):
        for i in range(2):
            _call(k, node, n=n, seed=60 + i)
    assert len(k.graphs) == MAX_KEYS and cap.calls == MAX_KEYS


@pytest.mark.parametrize("dev,offered", [("cuda", True), ("cpu", False)])
def test_offered_for_if_on_cuda_only(dev, offered):
    _, node = _kernel(FakeCapture())
    lay = type("L", (), {"type": "If", "domain": ""})()
    assert bool(control_candidates(lay, None, torch.device(dev))) == offered
    assert BranchGraphs.capturable is False


def test_layer_info_says_how_the_if_runs():
    import tensorforge as tf
    from tensorforge.builder import tactics
    p = tf.OptimizationProfile()
    p.set_shape("x", (3, 8), (3, 8), (3, 8))
    p.set_shape("y", (3, 8), (3, 8), (3, 8))
    plan = tf.Builder(tf.BuilderConfig(device="cpu", profiles=[p])).build(if_model()).plan
    (lay,) = [L for L in plan.layers if L.type == "If"]
    assert "reference interpreter" in plan.meta["eager_layers"][lay.name]  # the CPU: no if_graphs
    lay.tactic = {"source": "aten", "name": "if_graphs", "params": {}}
    tactics._eager_reasons(plan)
    assert plan.meta["eager_layers"][lay.name] == tactics.BRANCH_GRAPHS
