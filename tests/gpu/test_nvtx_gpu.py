"""NVTX ranges per layer on CUDA (ExecutionContext(nvtx=True), forgeexec --profilingVerbosity=detailed):
ranges are pushed per launch with the layer's name, real NVTX calls work under emit_nvtx, and the
outputs match a context without NVTX (skipped without a GPU)."""
import pytest
import torch

import tensorforge as tf
from tensorforge.testing import rand

from ..core.models import conv_net


def _engine():
    return tf.Builder(tf.BuilderConfig(device="cuda", tf32=False)).build(conv_net())


@pytest.mark.fast
def test_ranges_are_pushed_per_layer(monkeypatch):
    events = []
    monkeypatch.setattr(torch.cuda.nvtx, "range_push", events.append)
    monkeypatch.setattr(torch.cuda.nvtx, "range_pop", lambda: events.append(None))
    eng = _engine()
    x = rand((2, 3, 16, 16), seed=2)
    ref = eng.create_execution_context().infer({"x": x})["y"]
    assert events == []  # off by default
    ctx = eng.create_execution_context(nvtx=True)
    for _ in range(3):
        torch.testing.assert_close(ctx.infer({"x": x})["y"], ref, rtol=0, atol=0)
    names = [L.name for L in ctx.exec_plan.launches]
    assert names and events == [e for n in names * 3 for e in (n, None)]


def test_real_nvtx_under_emit_nvtx():
    eng = _engine()
    x = rand((2, 3, 16, 16), seed=5)
    ref = eng.create_execution_context().infer({"x": x})["y"]
    ctx = eng.create_execution_context(nvtx=True)
    with torch.autograd.profiler.emit_nvtx():
        got = ctx.infer({"x": x})["y"]
    torch.testing.assert_close(got, ref, rtol=0, atol=0)


def test_graph_replays_push_no_ranges(monkeypatch):
    events = []
    monkeypatch.setattr(torch.cuda.nvtx, "range_push", events.append)
    monkeypatch.setattr(torch.cuda.nvtx, "range_pop", lambda: events.append(None))
    eng = _engine()
    x = rand((2, 3, 16, 16), seed=7)
    ref = eng.create_execution_context().infer({"x": x})["y"]
    ctx = eng.create_execution_context(nvtx=True, use_cuda_graph=True)
    torch.testing.assert_close(ctx.infer({"x": x})["y"], ref, rtol=0, atol=0)  # eager run + capture
    first = len(events)
    n = len(ctx.exec_plan.launches)
    assert first == 4 * n  # a range per launch in the eager run and in the capture
    torch.testing.assert_close(ctx.infer({"x": x})["y"], ref, rtol=0, atol=0)  # replay: host-side ranges none
    assert len(events) == first
