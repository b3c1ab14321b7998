"""Several execution contexts on one engine: shared weights, threads, shared activation memory, and the
input-consumed event."""
import threading

import numpy as np
import pytest
import torch

import tensorforge as tf
from tensorforge.errors import TensorforgeError
from tensorforge.testing import rand, run_ort

from ..core.models import conv_net
from .models import heads


def _build(model, **kw):
    kw.setdefault("activation_memory", "arena")  # these tests are about sharing the arena
    return tf.Builder(tf.BuilderConfig(device="cpu", **kw)).build(model)


def _profile(mx=8):
    p = tf.OptimizationProfile()
    p.set_shape("x", (1, 3, 16, 16), (2, 3, 16, 16), (mx, 3, 16, 16))
    return p


def test_contexts_share_weights():
    eng = _build(conv_net())
    a, b = eng.create_execution_context(), eng.create_execution_context()
    x = rand((2, 3, 16, 16))
    ya, yb = a.infer({"x": x})["y"], b.infer({"x": x})["y"]
    torch.testing.assert_close(ya, yb, rtol=0, atol=0)
    weights = [n for n, t in eng.plan.tensors.items() if t.kind == "weight"]
    assert weights and all(a._slots[n] is eng.weights[n] is b._slots[n] for n in weights)
    if a._arena is not None:  # activations are per context (kernel-allocated ones are never shared)
        assert a._arena.data_ptr() != b._arena.data_ptr()
    assert ya.data_ptr() != yb.data_ptr()


def test_threads_each_with_its_own_context():
    m = conv_net()
    eng = _build(m, profiles=[_profile()])
    n_threads, iters = 4, 5
    feeds = {(t, i): rand((1 + (t + i) % 4, 3, 16, 16), seed=10 * t + i) for t in range(n_threads)
             for i in range(iters)}
    refs = {k: run_ort(m, {"x": x})["y"] for k, x in feeds.items()}
    got, errors, barrier = {}, [], threading.Barrier(n_threads)

    def work(t):
        try:
            ctx = eng.create_execution_context()
            barrier.wait()
            for i in range(iters):
                got[(t, i)] = ctx.infer({"x": feeds[(t, i)]})["y"].numpy()
        except BaseException as e:  # reported in the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    for k, r in refs.items():
        np.testing.assert_allclose(got[k], r, rtol=1e-5, atol=1e-5, err_msg=str(k))


def test_contexts_used_in_turn_share_one_arena():
    m = conv_net()
    eng = _build(m, profiles=[_profile()])
    arena = torch.empty(eng.device_memory_size, dtype=torch.uint8)
    a = eng.create_execution_context(device_memory=arena)
    b = eng.create_execution_context_without_device_memory()
    with pytest.raises(TensorforgeError, match="no device memory"):
        b.infer({"x": rand((1, 3, 16, 16))})
    b.set_device_memory(arena)
    assert a.device_memory.data_ptr() == b.device_memory.data_ptr() == arena.data_ptr()
    for bs in (8, 3, 1):
        xa, xb = rand((bs, 3, 16, 16), seed=bs), rand((9 - bs, 3, 16, 16), seed=20 + bs)
        ya = a.infer({"x": xa})["y"].numpy()
        yb = b.infer({"x": xb})["y"].numpy()
        np.testing.assert_allclose(ya, run_ort(m, {"x": xa})["y"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(yb, run_ort(m, {"x": xb})["y"], rtol=1e-5, atol=1e-5)
    small = eng.create_execution_context(device_memory=torch.empty(256, dtype=torch.uint8))
    with pytest.raises(TensorforgeError, match="device memory too small"):
        small.infer({"x": rand((8, 3, 16, 16))})
    with pytest.raises(TensorforgeError, match="contiguous torch tensor"):
        b.set_device_memory(torch.empty(64, 64, dtype=torch.uint8).t())


def test_own_arena_sized_for_the_profile_up_front():
    eng = _build(conv_net(), profiles=[_profile()])
    ctx = eng.create_execution_context()
    ctx.infer({"x": rand((1, 3, 16, 16))})
    first = ctx._arena.data_ptr()
    assert ctx._arena.numel() >= eng.device_memory_size
    ctx.infer({"x": rand((8, 3, 16, 16))})
    assert ctx._arena.data_ptr() == first  # no reallocation (captured graphs stay valid)


class _Probe:
    """An input-consumed 'event' on the CPU: records how far the inference was when it was set."""

    def __init__(self, out):
        self.out, self.seen = out, None

    def set(self):
        self.seen = self.out.clone()


def test_input_consumed_event_fires_before_the_inference_ends():
    eng = _build(heads(), max_aux_streams=0)
    ctx = eng.create_execution_context()
    x = torch.from_numpy(rand((2, 3, 8, 8), seed=1))
    outs = {o.name: torch.full((2, 4, 8, 8), float("nan")) for o in eng.outputs}
    ctx.set_input_shape("x", (2, 3, 8, 8))
    ctx.set_tensor_address("x", x)
    for k, v in outs.items():
        ctx.set_tensor_address(k, v)
    probe = _Probe(outs["h2_cls"])
    ctx.set_input_consumed_event(probe)
    assert ctx.get_input_consumed_event() is probe
    ctx.execute_async()
    assert probe.seen is not None and torch.isnan(probe.seen).all()  # fired before the last head ran
    assert torch.isfinite(outs["h2_cls"]).all()
    ev = threading.Event()
    ctx.set_input_consumed_event(ev)
    ctx.execute_async()
    assert ev.is_set()
