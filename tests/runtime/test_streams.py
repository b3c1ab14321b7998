"""Auxiliary streams: assignment of independent branches, the happens-before horizon, memory planning
with concurrency, the fork/join schedule, and a simulated out-of-order run (any legal interleaving of
the streams gives the sequential outputs, in the planned arena)."""
import random

import numpy as np
import pytest
import torch

import tensorforge as tf
from tensorforge import zoo
from tensorforge.runtime import memory
from tensorforge.runtime import streams as st
from tensorforge.runtime.engine import Engine
from tensorforge.runtime.plan import LayerSpec
from tensorforge.testing import rand, run_ort

from .models import heads, two_branch


def _build(model, **kw):
    return tf.Builder(tf.BuilderConfig(device="cpu", **kw)).build(model)


def _layers(spec):
    """LayerSpecs from [(name, inputs, outputs, stream)]."""
    return [LayerSpec(n, "Relu", list(i), list(o), stream=s) for n, i, o, s in spec]


# ---- assignment ----------------------------------------------------------------------------------------
def test_two_branches_get_an_aux_stream():
    m = two_branch()
    eng = _build(m)
    streams = {lay.name: lay.stream for lay in eng.layers}
    assert eng.num_aux_streams == 1
    a = [s for n, s in streams.items() if n.startswith("a_")]
    b = [s for n, s in streams.items() if n.startswith("b_")]
    assert set(a) == {0} and set(b) == {1}, streams
    assert streams["join"] == 0
    none = _build(m, max_aux_streams=0)
    assert none.num_aux_streams == 0 and all(lay.stream == 0 for lay in none.layers)
    x = rand((2, 3, 8, 8))
    ref = run_ort(m, {"x": x})["y"]
    for e in (eng, none):
        np.testing.assert_allclose(e.create_execution_context().infer({"x": x})["y"].numpy(), ref, rtol=1e-5,
                                   atol=1e-5)
    again = Engine.deserialize(eng.serialize())
    assert again.num_aux_streams == 1 and [lay.stream for lay in again.layers] == [lay.stream for lay in eng.layers]


@pytest.mark.parametrize("cap,expect", [(None, 2), (1, 1), (4, 4), (8, 5), (0, 0)])
def test_detector_heads_spread_over_the_allowed_streams(cap, expect):
    eng = _build(heads(), max_aux_streams=cap)
    assert eng.num_aux_streams == expect
    by_branch = {}
    for lay in eng.layers:
        if lay.name.startswith("h"):
            by_branch.setdefault(lay.name.split(".")[0], set()).add(lay.stream)
    assert all(len(s) == 1 for s in by_branch.values()), by_branch  # a branch stays on one stream
    assert len({next(iter(s)) for s in by_branch.values()}) == expect + (1 if cap != 8 and expect else 1)


def test_yolo_small_heads_on_aux_streams():
    eng = _build(zoo.get_model("yolo_det_small"), opt_level=0, max_aux_streams=3)
    assert eng.num_aux_streams == 3
    aux_convs = [lay for lay in eng.layers if lay.stream and "Conv" in lay.type]
    assert len(aux_convs) >= 6  # detect-head branches (box / class convs per scale)
    head = {lay.name.split(" + ")[0]: lay.stream for lay in eng.layers if lay.name.startswith("model.22.cv")}
    if "model.22.cv2.0.0.conv" in head:  # YOLOv8 naming: box and class branches of one scale overlap
        assert head["model.22.cv2.0.0.conv"] != head["model.22.cv3.0.0.conv"]
    _assert_memory_safe(eng.plan)


# ---- horizon, schedule, memory (pure functions) ------------------------------------------------------
def test_horizon_sequential_and_forked():
    seq = _layers([("a", ["x"], ["t1"], 0), ("b", ["t1"], ["t2"], 0), ("c", ["t2"], ["y"], 0)])
    assert st.horizon(seq) == [0, 1, 2]
    fork = _layers([("a", ["x"], ["t1"], 0), ("b", ["t1"], ["t2"], 0), ("c", ["t1"], ["t3"], 1),
                    ("d", ["t3"], ["t4"], 1), ("e", ["t2", "t4"], ["y"], 0)])
    # b (main) may overlap c and d (aux); a precedes everything; e follows everything
    assert st.horizon(fork) == [0, 3, 2, 3, 4]


def test_concurrent_lifetimes_keep_concurrent_buffers_apart():
    access = {"t1": [0, 1, 2], "t2": [1, 4], "t3": [2, 3], "t4": [3, 4]}
    seq = memory.concurrent_lifetimes(access, [0, 1, 2, 3, 4])
    assert seq == {"t1": (0, 2), "t2": (1, 4), "t3": (2, 3), "t4": (3, 4)}
    conc = memory.concurrent_lifetimes(access, [0, 3, 3, 3, 4])
    assert conc["t1"] == (0, 3) and conc["t3"] == (2, 3)
    bufs = [memory.Buffer(n, 1024, f, last) for n, (f, last) in conc.items()]
    offsets, total = memory.plan(bufs)
    for x in bufs:
        for y in bufs:
            if x.name < y.name and not (x.last < y.first or y.last < x.first):
                assert abs(offsets[x.name] - offsets[y.name]) >= 1024, (x, y)


def test_schedule_waits_only_across_streams_and_skips_implied_waits():
    streams = [0, 0, 1, 1, 0, 1]
    ins = [["x"], ["t1"], ["t1"], ["t3"], ["t2", "t4"], ["t5", "t1"]]
    outs = [["t1"], ["t2"], ["t3"], ["t4"], ["t5"], ["y"]]
    s = st.schedule(streams, ins, outs, {})
    assert s.waits == [[], [], [0], [], [3], [4]]  # step 5 needs t1 too, implied by waiting on 4
    assert s.record[0] and s.record[3] and s.record[4] and s.record[5]  # 5: last of aux stream 1 (join)
    assert s.aux == [1] and s.last_on == {0: 4, 1: 5}


def _assert_memory_safe(plan):
    """Buffers sharing arena bytes: every access of the earlier one happens before the later one's write
    (happens-before rebuilt here from data dependencies and per-stream order)."""
    from tensorforge.runtime.binding import bind_symbols
    from tensorforge.runtime.shapes import eval_shape
    env = bind_symbols(plan, {n: tuple(d if isinstance(d, int) else 2 for d in plan.tensors[n].shape)
                               for n in plan.inputs})
    lt = memory.lifetimes(plan)
    bufs = [memory.Buffer(n, int(np.prod(eval_shape(plan.tensors[n].shape, env))) * 4, f, la)
            for n, (f, la) in lt.items()]
    offsets, _ = memory.plan(bufs)
    preds = [set(p) for p in st.layer_preds(plan.layers)]
    last = {}
    for j, lay in enumerate(plan.layers):
        if lay.mode != "view":
            preds[j] |= {last[lay.stream]} if lay.stream in last else set()
            last[lay.stream] = j
    reach = st.reachability(preds)
    roots = st.view_roots(plan.layers)
    access = {}
    for i, lay in enumerate(plan.layers):
        for n in list(lay.inputs) + list(lay.outputs):
            if n:
                access.setdefault(roots.get(n, n), set()).add(i)
    for x in bufs:
        for y in bufs:
            overlap = offsets[x.name] < offsets[y.name] + y.size and offsets[y.name] < offsets[x.name] + x.size
            if x is not y and overlap and x.first < y.first:
                assert all(reach[y.first, a] for a in access[x.name]), (x, y)


def test_memory_plan_with_streams_is_safe_and_bigger_only_when_needed():
    par = _build(heads(), max_aux_streams=4)
    seq = _build(heads(), max_aux_streams=0)
    _assert_memory_safe(par.plan)
    assert par.device_memory_size >= seq.device_memory_size
    lt_par, lt_seq = memory.lifetimes(par.plan), memory.lifetimes(seq.plan)
    assert any(lt_par[n][1] > lt_seq[n][1] for n in lt_par)  # some lifetimes were extended


# ---- simulated concurrent execution --------------------------------------------------------------------
def _simulate(ctx, seed):
    """Run the multi-stream ExecPlan of ctx's shapes in a random order that respects stream order and
    each launch's event waits; returns the slots by name."""
    from tensorforge.runtime import execplan
    from tensorforge.runtime.steps import _exec
    xp = execplan.build(ctx.plan, ctx._kernels, ctx._initial_slots(), ctx.device, True)
    assert xp.aux and any(L.waits for L in xp.launches)
    queues = {}
    for k, L in enumerate(xp.launches):
        queues.setdefault(L.stream, []).append(k)
    done, rng, slots = set(), random.Random(seed), list(xp.initial)
    while any(queues.values()):
        ready = [s for s, q in queues.items() if q and all(w in done for w in xp.launches[q[0]].waits)]
        s = rng.choice(ready)
        k = queues[s].pop(0)
        _exec(xp.launches[k], slots, xp.names, True, None, None)
        done.add(k)
    return dict(zip(xp.names, slots))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_any_legal_interleaving_gives_sequential_outputs(seed):
    eng = _build(heads(seed=seed), max_aux_streams=4, activation_memory="arena")  # checks the arena plan
    assert eng.num_aux_streams == 4
    ctx = eng.create_execution_context()
    x = torch.from_numpy(rand((2, 3, 8, 8), seed=seed))
    ref = ctx.infer({"x": x})
    ctx._arena.fill_(255)  # stale data everywhere: a missing dependency would show
    got = _simulate(ctx, seed)
    for k, v in ref.items():
        torch.testing.assert_close(got[k], v, rtol=0, atol=0)
