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
    monkeypatch.setattr(steps, "_launch", lambda xp, k, L, slots, v, a, c, b, s: steps._exec(L, slots, xp.names, v, a, c))
    called = eng.create_execution_context().infer(feed)
    for got in bound + graph:
        for k, want in called.items():
            torch.testing.assert_close(got[k], want, rtol=0, atol=0)
