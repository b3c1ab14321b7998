"""Dynamic shapes, aux streams, contexts and events on CUDA (skipped without a GPU)."""
import threading

import numpy as np
import pytest
import torch

import tensorforge as tf
from tensorforge.testing import rand, run_ort

from ..runtime.models import heads, shape_tensor_model


def _build(model, **kw):
    return tf.Builder(tf.BuilderConfig(device="cuda", tf32=False, **kw)).build(model)


def _bind(ctx, eng, feed):
    """Device inputs/outputs for `feed` (numpy); returns (inputs, outputs) dicts of CUDA tensors."""
    ins = {k: torch.from_numpy(v).cuda() for k, v in feed.items()}
    for k, v in ins.items():
        ctx.set_input_shape(k, tuple(v.shape))
        ctx.set_tensor_address(k, v)
    outs = {o.name: torch.empty(ctx.get_tensor_shape(o.name), dtype=getattr(torch, o.dtype), device="cuda")
            for o in eng.outputs}
    for k, v in outs.items():
        ctx.set_tensor_address(k, v)
    return ins, outs


def _zoo():
    from tensorforge import zoo
    return zoo


@pytest.mark.fast(name="yolo_det_small", graph=True)
@pytest.mark.parametrize("name", ["yolo_det_small", "bert_base_small"])
@pytest.mark.parametrize("graph", [False, True])
def test_aux_streams_match_one_stream(name, graph, tmp_path):
    zoo = _zoo()
    m = zoo.get_model(name)
    # one timing cache: both builds choose the same tactics (session 10: a second build's own timings chose
    # other conv kernels, 1.7e-4 apart, and the comparison below is of scheduling, not of tactics)
    cache = str(tmp_path / "timing.cache")
    one, many = _build(m, max_aux_streams=0, timing_cache=cache), _build(m, max_aux_streams=4, timing_cache=cache)
    # BERT's Q/K/V projections are merged into one GEMM (passes/merge_gemm): it may have no parallel branch left
    assert one.num_aux_streams == 0 and many.num_aux_streams >= (1 if name == "yolo_det_small" else 0)
    feeds = [zoo.random_inputs(name, 2, seed=i) for i in range(6)]
    ref = [one.create_execution_context().infer(f) for f in feeds]
    ctx = many.create_execution_context(use_cuda_graph=graph)
    ins, outs = _bind(ctx, many, feeds[0])
    s = torch.cuda.Stream()
    got = []
    with torch.cuda.stream(s):
        for f in feeds:  # back-to-back without host syncs: fork/join must order inferences
            for k, v in f.items():
                ins[k].copy_(torch.from_numpy(v), non_blocking=False)
            ctx.execute_async(s)
            got.append({k: v.clone() for k, v in outs.items()})
    s.synchronize()
    for r, g in zip(ref, got):
        for k in r:
            torch.testing.assert_close(g[k], r[k], rtol=1e-5, atol=1e-5)
    if graph:
        assert len(ctx._graphs) == 1


@pytest.mark.fast
def test_cuda_graph_lru_per_shape_set():
    zoo = _zoo()
    m = zoo.get_model("resnet50_small")
    prof = tf.OptimizationProfile()
    prof.set_shape("input", (1, 3, 64, 64), (2, 3, 64, 64), (4, 3, 64, 64))
    eng = _build(m, profiles=[prof], activation_memory="arena")  # checks the arena's sizing
    ctx = eng.create_execution_context(use_cuda_graph=True, graph_cache_size=2)
    s = torch.cuda.Stream()
    for bs in (1, 2, 1, 3, 1, 2):
        feed = zoo.random_inputs("resnet50_small", bs, seed=bs)
        ins, outs = _bind(ctx, eng, feed)
        for _ in range(3):  # eager (resolve) + capture, then replays
            ctx.execute_async(s)
        s.synchronize()
        ref = run_ort(m, feed)["output"]
        np.testing.assert_allclose(outs["output"].cpu().numpy(), ref, rtol=1e-3, atol=1e-3 * np.abs(ref).max())
        assert len(ctx._graphs) <= 2
    assert ctx._arena is not None and ctx._arena.numel() >= eng.device_memory_size


@pytest.mark.fast
def test_input_consumed_event_lets_the_next_input_be_copied():
    eng = _build(heads(), max_aux_streams=4)
    for graph in (False, True):
        ctx = eng.create_execution_context(use_cuda_graph=graph)
        xs = [rand((2, 3, 8, 8), seed=i) for i in range(8)]
        refs = [eng.create_execution_context().infer({"x": x}) for x in xs]
        ins, outs = _bind(ctx, eng, {"x": xs[0]})
        host = [torch.from_numpy(x).pin_memory() for x in xs]
        compute, copy = torch.cuda.Stream(), torch.cuda.Stream()
        consumed = torch.cuda.Event()
        ctx.set_input_consumed_event(consumed)
        results = []
        copy.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(copy):
            ins["x"].copy_(host[0], non_blocking=True)
        for i in range(len(xs)):  # TensorRT's pipelined pattern: copy i+1 while i computes
            done_copy = torch.cuda.Event()
            done_copy.record(copy)
            compute.wait_event(done_copy)
            ctx.execute_async(compute)
            with torch.cuda.stream(compute):
                results.append({k: v.clone() for k, v in outs.items()})
            if i + 1 < len(xs):
                copy.wait_event(consumed)
                with torch.cuda.stream(copy):
                    ins["x"].copy_(host[i + 1], non_blocking=True)
        compute.synchronize()
        assert consumed.query()
        for r, g in zip(refs, results):
            for k in r:
                torch.testing.assert_close(g[k], r[k], rtol=1e-5, atol=1e-5)


def test_threads_with_own_context_and_stream():
    zoo = _zoo()
    m = zoo.get_model("resnet50_small")
    eng = _build(m)
    feeds = [zoo.random_inputs("resnet50_small", 1, seed=i) for i in range(4)]
    refs = [eng.create_execution_context().infer(f)["output"] for f in feeds]
    errors, got = [], {}

    def work(t):
        try:
            ctx = eng.create_execution_context(use_cuda_graph=True)
            s = torch.cuda.Stream()
            ins, outs = _bind(ctx, eng, feeds[t])
            for _ in range(20):
                ctx.execute_async(s)
            s.synchronize()
            got[t] = outs["output"].clone()
        except BaseException as e:  # reported in the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    for t, r in enumerate(refs):
        torch.testing.assert_close(got[t], r, rtol=1e-5, atol=1e-5)


@pytest.mark.fast
def test_shared_arena_and_shape_tensor_on_cuda():
    prof = tf.OptimizationProfile()
    prof.set_shape("x", (1, 12), (2, 12), (4, 12))
    prof.set_shape_input("s", (1, 1), (4, 6), (48, 48))
    prof.set_shape_input("e", (1, 3), (2, 3), (8, 3))
    eng = _build(shape_tensor_model(), profiles=[prof])
    arena = torch.empty(max(eng.device_memory_size, 1), dtype=torch.uint8, device="cuda")
    a = eng.create_execution_context(device_memory=arena)
    b = eng.create_execution_context_without_device_memory()
    b.set_device_memory(arena)
    m = shape_tensor_model()
    for ctx, (n, s, e) in ((a, (2, (4, 6), (2, 3))), (b, (3, (9, 4), (5, 3))), (a, (3, (36, 1), (8, 3)))):
        feed = {"x": rand((n, 12), seed=n), "s": np.array(s, np.int64), "b": rand((1, 3)),
                "e": np.array(e, np.int64)}
        got = ctx.infer(feed)
        for k, r in run_ort(m, feed).items():
            np.testing.assert_allclose(got[k].cpu().numpy(), r, rtol=1e-6, atol=1e-6)
    with pytest.raises(tf.errors.TensorforgeError, match="host memory"):
        a.set_tensor_address("s", torch.tensor([3, 8], device="cuda"))
