"""Warm-up / iterations / duration loop logic with a fake clock and a fake execution context."""
from __future__ import annotations

import time

import pytest

from tensorforge.cli.forgeexec.backend import CpuBackend
from tensorforge.cli.forgeexec.loop import Iteration, LoopConfig, run_inference
from tensorforge.cli.forgeexec.report import split_warmup


class FakeClock:
    """Seconds that advance only when told to (plus `tick` per reading, like a real clock would)."""

    def __init__(self, tick=0.0):
        self.t, self.tick, self.sleeps = 100.0, tick, []

    def now(self):
        self.t += self.tick
        return self.t

    def sleep(self, s):
        self.sleeps.append(s)
        self.t += s


class FakeContext:
    """execute_async advances the clock by `ms`; optionally raises KeyboardInterrupt after `stop_after` calls."""

    def __init__(self, clock, ms=1.0, stop_after=None):
        self.clock, self.ms, self.calls, self.stop_after, self.profiler = clock, ms, 0, stop_after, None

    def execute_async(self, stream=None):
        self.calls += 1
        if self.stop_after is not None and self.calls > self.stop_after:
            raise KeyboardInterrupt
        self.clock.t += self.ms / 1000.0
        return True


class FakeBuffers:
    def h2d(self, stream):
        pass

    def d2h(self, stream):
        pass

    def upload(self):
        pass


def _run(cfg, clock, n_streams=1, depth=2, ms=1.0, stop_after=None):
    backend = CpuBackend(clock=clock.now, sleep=clock.sleep)
    ctxs = [FakeContext(clock, ms, stop_after) for _ in range(n_streams)]
    its = [Iteration(i, c, FakeBuffers(), backend, depth, True) for i, c in enumerate(ctxs)]
    return run_inference(its, backend, cfg), ctxs


def test_iterations_only_exact():
    clock = FakeClock()
    traces, ctxs = _run(LoopConfig(iterations=10, duration_s=0, warmup_ms=0), clock)
    assert len(traces) == 10 and ctxs[0].calls == 10
    assert [float(t.computeStart) for t in traces] == [float(i) for i in range(10)]
    assert all(float(t.computeEnd - t.computeStart) == 1.0 for t in traces)
    assert all(t.h2dStart == t.computeStart and t.d2hEnd == t.computeEnd for t in traces)  # transfers off


def test_duration_bound():
    clock = FakeClock()
    traces, _ = _run(LoopConfig(iterations=1, duration_s=0.01, warmup_ms=0), clock)
    # the loop stops once a synced query started at >= 10 ms; the one enqueued ahead is synced at the end
    assert float(traces[-2].computeStart) == 10.0 and len(traces) == 12


@pytest.mark.parametrize("iters, dur_s, warm_ms", [(10, 0, 5), (3, 0.004, 2.5), (50, 0, 20), (1, 0.02, 7)])
def test_warmup_iterations_and_duration_all_hold(iters, dur_s, warm_ms):
    clock = FakeClock(tick=1e-6)
    traces, _ = _run(LoopConfig(iterations=iters, duration_s=dur_s, warmup_ms=warm_ms), clock)
    w = split_warmup(traces, warm_ms)
    assert w > 0 and all(t.computeStart < warm_ms for t in traces[:w])
    assert len(traces) - w >= iters
    assert max(float(t.computeStart) for t in traces) >= dur_s * 1000 + warm_ms


def test_idle_time_between_timed_iterations():
    clock = FakeClock()
    traces, _ = _run(LoopConfig(iterations=4, duration_s=0, warmup_ms=0, idle_ms=2.0), clock)
    assert clock.sleeps == [0.002] * 4 and len(traces) == 4
    assert float(traces[1].computeStart - traces[0].computeEnd) == 2.0


def test_expose_dma_depth_one():
    clock = FakeClock()
    traces, ctxs = _run(LoopConfig(iterations=5, duration_s=0, warmup_ms=0), clock, depth=1)
    assert len(traces) == 5 and ctxs[0].calls == 5


def test_sleep_time_delays_device_start():
    clock = FakeClock()
    traces, _ = _run(LoopConfig(iterations=2, duration_s=0, warmup_ms=0, sleep_ms=3.0), clock)
    assert float(traces[0].enqStart) == pytest.approx(3.0) and float(traces[0].computeStart) == 0.0


def test_multiple_streams_pooled_and_sorted():
    clock = FakeClock()
    traces, ctxs = _run(LoopConfig(iterations=4, duration_s=0, warmup_ms=0), clock, n_streams=2)
    assert {t.stream for t in traces} == {0, 1} and len(traces) == 8
    starts = [float(t.h2dStart) for t in traces]
    assert starts == sorted(starts)


def test_endless_duration_stops_on_interrupt():
    clock = FakeClock()
    traces, _ = _run(LoopConfig(iterations=1, duration_s=-1, warmup_ms=0), clock, stop_after=20)
    assert len(traces) == 20


def test_threads_one_loop_per_stream():
    backend = CpuBackend()

    class Sleepy:
        profiler = None

        def execute_async(self, stream=None):
            time.sleep(0.001)
            return True

    its = [Iteration(i, Sleepy(), FakeBuffers(), backend, 2, True) for i in range(2)]
    traces = run_inference(its, backend, LoopConfig(iterations=5, duration_s=0, warmup_ms=0, threads=True))
    assert sum(t.stream == 0 for t in traces) >= 5 and sum(t.stream == 1 for t in traces) >= 5


class _GraphBackend(CpuBackend):
    """A CPU backend whose 'graph capture' fails or succeeds on demand."""

    def __init__(self, clock, ok):
        super().__init__(clock=clock.now, sleep=clock.sleep)
        self.ok, self.launches, self.cleared = ok, 0, False

    def capture(self, fn, stream):
        if not self.ok:
            raise RuntimeError("operation not permitted when stream is capturing")
        fn()
        return "graph"

    def launch(self, graph, stream):
        self.launches += 1

    def clear_error(self):
        self.cleared = True


@pytest.mark.parametrize("ok", [True, False])
def test_cuda_graph_capture_success_and_fallback(ok):
    clock = FakeClock()
    backend = _GraphBackend(clock, ok)
    ctx = FakeContext(clock)
    it = Iteration(0, ctx, FakeBuffers(), backend, 2, True)
    warns, infos = [], []
    assert it.capture_graph(warns.append, infos.append) is ok
    assert ctx.calls == (2 if ok else 1)  # one normal enqueue first, then the captured one
    run_inference([it], backend, LoopConfig(iterations=3, duration_s=0, warmup_ms=0))
    if ok:
        assert backend.launches == 3 and infos and not warns
    else:
        assert backend.cleared and ctx.calls == 4
        assert warns == ["The built engine contains operations that are not permitted under CUDA graph capture mode.",
                         "CUDA graph capture failed. The inference will be launched without using CUDA graph."]
