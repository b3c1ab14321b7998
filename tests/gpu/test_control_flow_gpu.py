"""Control flow on CUDA (skipped without a GPU): a run-time If / a Loop layer runs eagerly (its
kernel declares it cannot be captured), with use_cuda_graph too, and agrees with ONNX Runtime."""
import numpy as np
import pytest

import tensorforge as tf
from tensorforge.testing import rand, run_ort

from ..ops.test_control_flow import loop_model, nested_if_model, shape_if_model


def _run(model, feed, graph):
    eng = tf.Builder(tf.BuilderConfig(device="cuda", tf32=False)).build(model)
    ctx = eng.create_execution_context(use_cuda_graph=graph)
    outs = [ctx.infer(feed) for _ in range(3)]  # first run eager, later ones replay where allowed
    return eng, {k: v.float().cpu().numpy() for k, v in outs[-1].items()}


@pytest.mark.fast(graph=True, sx=1)
@pytest.mark.parametrize("graph", [False, True])
@pytest.mark.parametrize("sx", [1, -1])
def test_run_time_if_on_cuda(graph, sx):
    model = nested_if_model()
    feed = {"x": np.abs(rand((3, 8), seed=1)) * sx, "y": np.abs(rand((3, 8), seed=2))}
    eng, got = _run(model, feed, graph)
    assert eng.plan.meta.get("eager_layers")
    np.testing.assert_allclose(got["out"], run_ort(model, feed)["out"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("graph", [False, True])
def test_loop_on_cuda(graph):
    model = loop_model()
    feed = {"x": np.array([1.5, 0.5], np.float32), "s0": np.array([0.1, 0.2], np.float32),
            "p0": np.array([1.0, -1.0], np.float32), "limit": np.array(9.0, np.float32), "M": np.array(5, np.int64)}
    _, got = _run(model, feed, graph)
    ref = run_ort(model, feed)
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-5, atol=1e-5)


def test_if_folded_at_build_time_keeps_the_cuda_graph():
    model = shape_if_model()
    feed = {"x": rand((2, 1, 5), seed=7)}
    eng, got = _run(model, feed, True)
    assert "eager_layers" not in eng.plan.meta
    np.testing.assert_allclose(got["out"], run_ort(model, feed)["out"], rtol=1e-6, atol=1e-6)


def _force_if_graphs(monkeypatch):
    """Tactic selection offers if_graphs first for every If layer."""
    from tensorforge.builder import tactics
    from tensorforge.kernels.aten import tactic
    orig = tactics.Selector.candidates

    def forced(self, lay, info):
        return ([tactic("if_graphs", level=0)] if lay.type == "If" else []) + orig(self, lay, info)
    monkeypatch.setattr(tactics.Selector, "candidates", forced)


def test_if_branches_replayed_from_their_own_cuda_graphs(monkeypatch):
    """if_graphs: each branch captured at its second run and replayed; a branch holding a nested run-time If
    cannot be captured (its condition is read on the host) and runs eagerly; every output matches ORT."""
    from tests.kernels.test_if_graphs import if_model
    _force_if_graphs(monkeypatch)
    for model, nested in ((if_model(3), False), (nested_if_model(), True)):
        eng = tf.Builder(tf.BuilderConfig(device="cuda", tf32=False, opt_level=0)).build(model)
        assert [L.tactic["name"] for L in eng.plan.layers if L.type == "If"] == ["if_graphs"]
        assert "own CUDA graph" in next(iter(eng.plan.meta["eager_layers"].values()))
        ctx = eng.create_execution_context(use_cuda_graph=True)
        for i in range(8):
            sx = 1 if i % 4 < 2 else -1  # each branch twice in a row, then the other
            feed = {"x": np.abs(rand((3, 8), seed=i)) * sx, "y": np.abs(rand((3, 8), seed=10 + i))}
            got = ctx.infer(feed)["out"].float().cpu().numpy()
            np.testing.assert_allclose(got, run_ort(model, feed)["out"], rtol=1e-5, atol=1e-5)
        k = next(fn for name, fn in ctx._kernels.items() if hasattr(fn, "graphs"))
        states = sorted(v is not None for v in k.graphs.values())
        assert states == ([False, True] if nested else [True, True]), k.graphs
