"""engine.device_memory_size is the activation memory a context really takes; user allocators
(runtime.allocator: TensorRT's IGpuAllocator role) and the tracking allocator."""
import gc

import pytest
import torch

import tensorforge as tf
from tensorforge import zoo
from tensorforge.runtime.allocator import DefaultAllocator, TrackingAllocator
from tensorforge.testing import rand

from ..core.models import conv_net

X = (2, 3, 16, 16)  # conv_net's input at the fixed shape below


def _fixed(mode="direct", shape=X):
    p = tf.OptimizationProfile()
    p.set_shape("x", shape, shape, shape)
    return tf.Builder(tf.BuilderConfig(device="cpu", profiles=[p], activation_memory=mode)).build(conv_net())


def _io_bytes(*tensors):
    return sum(torch.as_tensor(t).numel() * torch.as_tensor(t).element_size() for t in tensors)


class Recording(DefaultAllocator):
    """A user allocator that records its calls."""

    def __init__(self):
        self.calls = []

    def allocate(self, nbytes, device, stream=None):
        self.calls.append(("allocate", nbytes, device.type, stream))
        return super().allocate(nbytes, device, stream)

    def deallocate(self, buffer, device, stream=None):
        self.calls.append(("deallocate", buffer.numel(), device.type, stream))


@pytest.mark.parametrize("mode", ["direct", "arena"])
def test_device_memory_size_is_the_arena_a_context_allocates(mode):
    eng = _fixed(mode)
    assert eng.device_memory_size > 0
    ctx = eng.create_execution_context(allocator=TrackingAllocator())
    ctx.infer({"x": rand(X)})
    assert ctx.device_memory.numel() == ctx.arena_bytes == eng.device_memory_size
    plain = eng.create_execution_context()  # direct mode: kernels allocate what is not in the arena
    plain.infer({"x": rand(X)})
    own = plain.device_memory
    assert (0 if own is None else own.numel()) == eng.plan.meta["arena_bytes"]
    if mode == "arena":
        assert eng.plan.meta["arena_bytes"] == eng.device_memory_size


def test_device_memory_size_covers_the_largest_profile_shapes():
    p = tf.OptimizationProfile()
    p.set_shape("x", (1, 3, 16, 16), (2, 3, 16, 16), (6, 3, 16, 16))
    eng = tf.Builder(tf.BuilderConfig(device="cpu", profiles=[p])).build(conv_net())
    ctx = eng.create_execution_context(allocator=TrackingAllocator())
    ctx.infer({"x": rand((1, 3, 16, 16))})
    small = ctx.arena_bytes
    ctx.infer({"x": rand((6, 3, 16, 16))})
    assert small < ctx.arena_bytes == eng.device_memory_size == ctx.device_memory.numel()


def test_a_user_allocator_gets_the_expected_sizes_and_outputs_are_unchanged():
    eng = _fixed()
    alloc = Recording()
    ctx = eng.create_execution_context(allocator=alloc)
    x = rand(X, seed=4)
    y = ctx.infer({"x": x})["y"]
    ref = eng.create_execution_context().infer({"x": x})["y"]
    torch.testing.assert_close(y, ref, rtol=0, atol=0)
    # infer's own copies of the input and the output, then the arena: every activation, kernel results too
    assert alloc.calls == [("allocate", _io_bytes(x), "cpu", None), ("allocate", _io_bytes(y), "cpu", None),
                           ("allocate", eng.device_memory_size, "cpu", None)]
    ctx.infer({"x": rand(X, seed=5)})  # same shapes: nothing new
    assert len(alloc.calls) == 3


def test_tracking_peak_equals_device_memory_size_and_frees_on_deletion():
    eng = _fixed()
    tr = TrackingAllocator()
    ctx = eng.create_execution_context(allocator=tr)
    x, y = torch.from_numpy(rand(X, seed=1)), torch.empty(2, 10)
    ctx.set_input_shape("x", X)
    ctx.set_tensor_address("x", x)
    ctx.set_tensor_address("y", y)
    ctx.execute_async()  # I/O bound by the caller: the allocator holds the arena only
    assert tr.peak_bytes == tr.live_bytes == eng.device_memory_size and tr.allocations == 1
    out = ctx.infer({"x": x})["y"]
    torch.testing.assert_close(out, y, rtol=0, atol=0)
    assert tr.peak_bytes == eng.device_memory_size + _io_bytes(x, out) == tr.live_bytes
    assert tr.allocations == 3 and tr.deallocations == 0
    del ctx
    gc.collect()
    assert tr.live_bytes == 0 and tr.deallocations == tr.allocations == 3


def test_buffers_are_given_back_when_replaced():
    p = tf.OptimizationProfile()
    p.set_shape("x", (1, 3, 16, 16), (2, 3, 16, 16), (4, 3, 16, 16))
    eng = tf.Builder(tf.BuilderConfig(device="cpu", profiles=[p])).build(conv_net())
    tr = TrackingAllocator()
    ctx = eng.create_execution_context(allocator=tr)
    for bs in (1, 4, 2):
        x = rand((bs, 3, 16, 16), seed=bs)
        out = ctx.infer({"x": x})["y"]
        # the arena is sized for the profile's max once; the I/O copies follow the shapes
        assert tr.live_bytes == eng.device_memory_size + _io_bytes(x, out)
    assert tr.allocations == 7 and tr.deallocations == 4
    mine = torch.empty(eng.device_memory_size, dtype=torch.uint8)
    ctx.set_device_memory(mine)  # the context's own arena goes back to its allocator
    assert tr.live_bytes == _io_bytes(x, out)
    torch.testing.assert_close(ctx.infer({"x": x})["y"], out, rtol=0, atol=0)


def test_a_bad_allocator_is_named():
    class Bad(DefaultAllocator):
        def allocate(self, nbytes, device, stream=None):
            return torch.empty(max(1, nbytes // 2), dtype=torch.uint8)
    ctx = _fixed().create_execution_context(allocator=Bad())
    with pytest.raises(TypeError, match="Bad.allocate.*at least"):
        ctx.infer({"x": rand(X)})


def test_tracking_allocator_refuses_foreign_buffers():
    tr = TrackingAllocator()
    a = tr.allocate(100, torch.device("cpu"))
    tr.deallocate(a, torch.device("cpu"))
    with pytest.raises(ValueError, match="not allocated here"):
        tr.deallocate(a, torch.device("cpu"))
    with pytest.raises(ValueError, match="not allocated here"):
        tr.deallocate(torch.empty(3), torch.device("cpu"))


@pytest.mark.parametrize("name", zoo.list_models())
def test_every_zoo_model_needs_activation_memory(name):
    """The implicit profile's max is batch 1: at batch 1 a tracked context takes exactly device_memory_size."""
    eng = tf.Builder(tf.BuilderConfig(device="cpu", opt_level=0)).build(f"zoo:{name}")
    assert eng.device_memory_size > 0
    tr = TrackingAllocator()
    ctx = eng.create_execution_context(allocator=tr)
    ctx.infer(zoo.random_inputs(name, 1, seed=3))
    assert ctx.device_memory.numel() == eng.device_memory_size


def test_constant_device_copies_come_from_the_user_allocator_and_go_back_on_eviction():
    """A CUDA plan's device copies of host constants (execplan._device_input) are made by the
    context's copier: from the user allocator, held per plan, given back when the plan is evicted.
    (CPU plans make none; the copier is exercised directly, tests/gpu/test_allocator_gpu.py runs it.)"""
    eng = _fixed()
    rec = Recording()
    ctx = eng.create_execution_context(allocator=rec)
    ctx.infer({"x": rand(X)})
    key = next(iter(ctx._plans))
    copy = ctx._const_copier(key)
    host = torch.arange(5, dtype=torch.int64)
    d = copy(host)
    assert torch.equal(d, host) and rec.calls[-1][:2] == ("allocate", 5 * 8)
    n_dealloc = sum(c[0] == "deallocate" for c in rec.calls)
    ctx._drop_oldest_plan()
    assert sum(c[0] == "deallocate" for c in rec.calls) == n_dealloc + 1 and rec.calls[-1][1] == 5 * 8
    assert eng.create_execution_context()._const_copier(key) is None  # torch's allocator: plain .to(device)
