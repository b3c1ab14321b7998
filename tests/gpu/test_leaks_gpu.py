"""GPU memory flat over thousands of inferences (eager and CUDA graph) and hundreds of contexts."""
import gc

import pytest
import torch

import tensorforge as tf

pytestmark = pytest.mark.fast


def _engine():
    from tensorforge import zoo
    p = tf.OptimizationProfile()
    p.set_shape("input", (1, 3, 64, 64), (2, 3, 64, 64), (4, 3, 64, 64))
    cfg = tf.BuilderConfig(device="cuda", fp16=True, opt_level=0, profiles=[p])
    return tf.Builder(cfg).build(zoo.get_model("resnet50_small"))


def _feeds():
    g = torch.Generator(device="cuda").manual_seed(0)
    return [torch.rand((1 + i % 4, 3, 64, 64), device="cuda", generator=g) for i in range(4)]


@pytest.mark.parametrize("graph", [False, True])
def test_device_memory_flat_over_inferences(graph):
    eng = _engine()
    ctx = eng.create_execution_context(use_cuda_graph=graph)
    xs = _feeds()
    for i in range(200):
        ctx.infer({"input": xs[i % 4]})
    torch.cuda.synchronize()
    gc.collect()
    before = torch.cuda.memory_allocated()
    for i in range(2000):
        ctx.infer({"input": xs[i % 4]})
    torch.cuda.synchronize()
    gc.collect()
    grew = torch.cuda.memory_allocated() - before
    assert grew <= 1 << 20, f"GPU memory grew by {grew / 2**20:.2f} MiB over 2000 inferences"


def test_device_memory_flat_over_contexts():
    eng = _engine()
    x = _feeds()[1]
    for _ in range(10):
        eng.create_execution_context().infer({"input": x})
    torch.cuda.synchronize()
    gc.collect()
    before = torch.cuda.memory_allocated()
    for _ in range(200):
        eng.create_execution_context().infer({"input": x})
    torch.cuda.synchronize()
    gc.collect()
    grew = torch.cuda.memory_allocated() - before
    assert grew <= 1 << 20, f"GPU memory grew by {grew / 2**20:.2f} MiB over 200 contexts"
