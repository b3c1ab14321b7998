"""Foundation on CUDA: zoo models vs ONNX Runtime (CPU), CUDA-graph replay == eager, pointers."""
import numpy as np
import pytest
import torch

import tensorforge as tf
from tensorforge.testing import run_ort

ZOO = ["resnet50", "mobilenetv2", "vit_b16", "bert_base", "gpt2_small", "yolo_det"]


def _feed(name, batch):
    from tensorforge import zoo
    return zoo.random_inputs(name, batch, seed=5)


def _cos(a, b):
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("name", ZOO)
@pytest.mark.parametrize("tf32", [False, True])
def test_zoo_on_cuda_matches_ort(name, tf32):
    from tensorforge import zoo
    model = zoo.get_model(name)
    feed = _feed(name, 2)
    eng = tf.Builder(tf.BuilderConfig(device="cuda", tf32=tf32)).build(model)
    got = eng.create_execution_context().infer(feed)
    ref = run_ort(model, feed)
    for k, r in ref.items():
        g = got[k].float().cpu().numpy()
        if tf32:  # tf32: 10-bit mantissa products; compare by cosine and a loose relative bound
            assert _cos(g, r) > 0.9995, k
            np.testing.assert_allclose(g, r, rtol=5e-2, atol=5e-2 * float(np.abs(r).max()), err_msg=k)
        else:
            np.testing.assert_allclose(g, r, rtol=1e-3, atol=1e-3 * max(1.0, float(np.abs(r).max())), err_msg=k)


@pytest.mark.parametrize("name", ["resnet50", "bert_base"])
def test_cuda_graph_replay_equals_eager(name):
    from tensorforge import zoo
    eng = tf.Builder(tf.BuilderConfig(device="cuda")).build(zoo.get_model(name))
    feed = {k: torch.from_numpy(v).cuda() for k, v in _feed(name, 4).items()}
    eager = eng.create_execution_context().infer(feed)
    ctx = eng.create_execution_context(use_cuda_graph=True)
    for k, v in feed.items():
        ctx.set_input_shape(k, tuple(v.shape))
        ctx.set_tensor_address(k, v)
    outs = {o.name: torch.empty([s if s > 0 else 4 for s in o.shape], dtype=getattr(torch, o.dtype), device="cuda")
            for o in eng.outputs}
    for k, v in outs.items():
        ctx.set_tensor_address(k, v)
    s = torch.cuda.Stream()
    for _ in range(3):  # eager warm-up, capture, replay
        ctx.execute_async(s)
    s.synchronize()
    assert len(ctx._graphs) == 1
    for k in outs:
        torch.testing.assert_close(outs[k], eager[k], rtol=0, atol=0)


@pytest.mark.fast
def test_device_pointers():
    from tests.core.models import conv_net
    eng = tf.Builder(tf.BuilderConfig(device="cuda", tf32=False)).build(conv_net())
    ctx = eng.create_execution_context()
    x = torch.randn(2, 3, 16, 16, device="cuda")
    y = torch.full((2, 10), float("nan"), device="cuda")
    ctx.set_input_shape("x", (2, 3, 16, 16))
    ctx.set_tensor_address("x", x.data_ptr())
    ctx.set_tensor_address("y", y.data_ptr())
    ctx.execute_async(torch.cuda.current_stream())
    torch.cuda.synchronize()
    torch.testing.assert_close(y, ctx.infer({"x": x})["y"])
