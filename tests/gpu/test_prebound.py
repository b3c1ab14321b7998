"""Pre-bound launches (cuBLASLt's own bind, recorded driver launches of stored cubins) give the same
outputs as calling every kernel, eagerly and in a CUDA graph."""
import pytest
import torch

import tensorforge as tf
from tensorforge.runtime import steps

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.fast(model="bert_base_small")
@pytest.mark.parametrize("model", ["bert_base_small", "resnet50_small"])
def test_prebound_equals_called(model, monkeypatch):
    from tensorforge import zoo
    feed = {k: torch.from_numpy(v).cuda() for k, v in zoo.random_inputs(model, 2, seed=1).items()}
    prof = tf.OptimizationProfile()
    for k, v in feed.items():
        prof.set_shape(k, tuple(v.shape), tuple(v.shape), tuple(v.shape))
    eng = tf.Builder(tf.BuilderConfig(device="cuda", fp16=True, opt_level=0, profiles=[prof])).build(
        zoo.get_model(model))
    ctx = eng.create_execution_context()
    bound = [ctx.infer(feed) for _ in range(3)]
    assert any(ctx._bound_launches), "nothing was pre-bound"
    graph = [eng.create_execution_context(use_cuda_graph=True).infer(feed) for _ in range(2)]
    monkeypatch.setattr(steps, "_launch", lambda xp, k, L, slots, v, a, c, b, s, lg=None: steps._exec(L, slots, xp.names, v, a, c))
    called = eng.create_execution_context().infer(feed)
    for got in bound + graph:
        for k, want in called.items():
            torch.testing.assert_close(got[k], want, rtol=0, atol=0)


@pytest.mark.fast(model="resnet50_small")
@pytest.mark.parametrize("model", ["bert_base_small", "resnet50_small"])
def test_layer_graphs_equal_direct_calls(model):
    """Library layers replayed from their own CUDA graphs (runtime.layer_graphs) give bitwise the
    outputs of calling them, from the second inference on, also when inputs change in place."""
    from tensorforge import zoo
    from tensorforge.runtime.layer_graphs import LayerGraph
    feeds = [{k: torch.from_numpy(v).cuda() for k, v in zoo.random_inputs(model, 2, seed=s).items()}
             for s in (1, 2, 3)]
    prof = tf.OptimizationProfile()
    for k, v in feeds[0].items():
        prof.set_shape(k, tuple(v.shape), tuple(v.shape), tuple(v.shape))
    eng = tf.Builder(tf.BuilderConfig(device="cuda", fp16=True, opt_level=0, profiles=[prof])).build(
        zoo.get_model(model))
    ctx = eng.create_execution_context()
    direct = eng.create_execution_context(layer_graphs=False)
    for feed in feeds + feeds:
        got, want = ctx.infer(feed), direct.infer(feed)
        for k in want:
            torch.testing.assert_close(got[k], want[k], rtol=0, atol=0)
    kinds = [type(b).__name__ for b in ctx._bound_launches]
    assert ctx.layer_graphs.captured > 0 and any(isinstance(b, LayerGraph) for b in ctx._bound_launches), kinds
    assert all(ctx._bound_launches), f"layers left unbound: {kinds}"
    assert not any(isinstance(b, LayerGraph) for b in direct._bound_launches or [])
    # a user stream that is not the current one, and a profiled run, still agree
    s = torch.cuda.Stream()
    for n, t in feeds[0].items():
        ctx.set_tensor_address(n, t)
    outs = {n: torch.empty_like(v) for n, v in direct.infer(feeds[0]).items()}
    for n, t in outs.items():
        ctx.set_tensor_address(n, t)
    for _ in range(3):  # plan (direct), capture, replay
        ctx.execute_async(s)
    s.synchronize()
    for k, v in direct.infer(feeds[0]).items():
        torch.testing.assert_close(outs[k], v, rtol=0, atol=0)
