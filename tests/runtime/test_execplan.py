"""The ExecPlan as data: integer slots, pre-bound output buffers, releases, printing, immutability,
and the context's LRU of plans per shape set."""
import dataclasses

import pytest
import torch

import tensorforge as tf
from tensorforge.runtime import execplan
from tensorforge.testing import rand

from ..core.models import conv_net


def _engine(**kw):
    p = tf.OptimizationProfile()
    p.set_shape("x", (1, 3, 16, 16), (2, 3, 16, 16), (4, 3, 16, 16))
    return tf.Builder(tf.BuilderConfig(device="cpu", profiles=[p], **kw)).build(conv_net())


def test_plan_is_a_flat_list_of_prebound_launches():
    eng = _engine(activation_memory="arena")
    ctx = eng.create_execution_context()
    ctx.infer({"x": rand((2, 3, 16, 16))})
    xp = ctx.exec_plan
    assert isinstance(xp, execplan.ExecPlan) and len(xp.initial) == len(xp.names)
    names = [L.name for L in xp.launches]
    assert names == [lay.name for lay in eng.plan.layers if lay.mode != "view"]
    for L in xp.launches:
        assert all(isinstance(i, int) for i in L.ins + L.outs)
        for o, buf in zip(L.outs, L.planned):
            assert buf is None or buf is xp.initial[o]  # outputs bound to their arena/binding buffers
    y = xp.slot("y")
    assert xp.initial[y] is ctx._bound["y"] or xp.initial[y].data_ptr() == ctx._bound["y"].data_ptr()
    text = str(xp)
    assert text.splitlines()[0].startswith(f"ExecPlan: {len(xp.launches)} launches")
    assert all(n in text for n in names)
    with pytest.raises(dataclasses.FrozenInstanceError):
        xp.launches = ()


def test_kernel_allocated_outputs_are_released_after_their_last_reader():
    eng = _engine(activation_memory="direct")
    ctx = eng.create_execution_context()
    ctx.infer({"x": rand((2, 3, 16, 16))})
    xp = ctx.exec_plan
    taken = {o for L in xp.launches for o, b in zip(L.outs, L.planned) if b is None}
    released = [r for L in xp.launches for r in L.release]
    assert taken and sorted(released) == sorted(set(released)) and set(released) <= taken
    last_reader = {}
    for k, L in enumerate(xp.launches):
        for i in L.ins:
            last_reader[i] = k
    for k, L in enumerate(xp.launches):
        assert all(last_reader[r] == k for r in L.release)


def test_build_is_pure_and_deterministic():
    eng = _engine(activation_memory="arena")
    ctx = eng.create_execution_context()
    ctx.infer({"x": rand((2, 3, 16, 16))})
    slots = ctx._initial_slots()
    before = dict(slots)
    a = execplan.build(eng.plan, ctx._kernels, slots, ctx.device, False)
    b = execplan.build(eng.plan, ctx._kernels, slots, ctx.device, False)
    assert slots == before  # the input mapping is not modified
    assert str(a) == str(b) and a.names == b.names


def test_context_keeps_an_lru_of_plans():
    """One plan per (shapes, bound addresses); recent ones are reused, the oldest evicted."""
    eng = _engine()
    ctx = eng.create_execution_context(graph_cache_size=2)
    bufs = {bs: (torch.as_tensor(rand((bs, 3, 16, 16), seed=bs)), torch.empty(bs, 10)) for bs in (1, 2, 3)}

    def run(bs):
        x, y = bufs[bs]
        ctx.set_input_shape("x", tuple(x.shape))
        ctx.set_tensor_address("x", x)
        ctx.set_tensor_address("y", y)
        ctx.execute_async()
        return ctx.exec_plan
    plans = {}
    for bs in (1, 2, 1, 2):
        assert plans.setdefault(bs, run(bs)) is run(bs)
    assert ctx.replans == 2
    run(3)
    assert run(1) is not plans[1] and ctx.replans == 4  # 1 was the least recent: evicted by 3
    want = eng.create_execution_context().infer({"x": bufs[1][0]})["y"]
    assert torch.equal(bufs[1][1], want)
