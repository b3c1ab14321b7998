"""When the eager path replays a library layer from its own CUDA graph (runtime.layer_graphs): noted
at the first run, captured at the second, replayed after; never for a layer that declares itself not
capturable or whose capture fails, never launched inside another capture; with every launch
pre-bound the run is one replay per layer, the input-consumed event fired after the last reader."""
from types import SimpleNamespace

import torch

from tensorforge.kernels import driver
from tensorforge.runtime import steps
from tensorforge.runtime.execplan import ExecPlan, Launch

STREAM = SimpleNamespace(cuda_stream=7, device=SimpleNamespace(index=0))


class FakeGraph:
    graph = True

    def __init__(self, log, name):
        self.log, self.name = log, name

    def __call__(self, handle):
        self.log.append(("replay", self.name, handle))


class FakeGraphs:
    def __init__(self, log, fail=()):
        self.log, self.fail = log, set(fail)

    def capture(self, fn, stream_id):
        fn()  # the real capture records what fn enqueues; here it just runs
        name = self.log[-1][1]
        self.log.append(("capture", name, stream_id))
        return None if name in self.fail else FakeGraph(self.log, name)

    def keep(self, outs):
        return 0


def _plan(log, n=2, capturable=True, consumed_at=-1):
    x = torch.arange(4, dtype=torch.float32) + 1
    bufs = [torch.empty(4) for _ in range(n)]

    def kernel(name):
        def fn(args, outs):
            log.append(("call", name))
            torch.mul(args[0], 2, out=outs[0])
            return outs
        fn.capturable = capturable
        return fn
    launches = tuple(Launch(f"l{i}", kernel(f"l{i}"), True, (i,), (i + 1,), (bufs[i],)) for i in range(n))
    return ExecPlan(tuple(f"t{i}" for i in range(n + 1)), (x, *bufs), launches, consumed_at=consumed_at), bufs


def test_captured_at_second_run_then_replayed_without_python_per_layer(monkeypatch):
    monkeypatch.setattr(driver, "ensure_context", lambda i: None)
    log = []
    xp, bufs = _plan(log)
    bound, lg = steps.Bound(2), FakeGraphs(log)
    steps.run(xp, STREAM, bound=bound, layer_graphs=lg)
    assert log == [("call", "l0"), ("call", "l1")] and bound == [steps.LATER, steps.LATER]
    assert torch.equal(bufs[1], (torch.arange(4) + 1) * 4.0)
    log.clear()
    steps.run(xp, STREAM, bound=bound, layer_graphs=lg)
    assert log == [("call", "l0"), ("capture", "l0", 0), ("replay", "l0", 7),
                   ("call", "l1"), ("capture", "l1", 0), ("replay", "l1", 7)]
    log.clear()
    steps.run(xp, STREAM, bound=bound, layer_graphs=lg)
    assert log == [("replay", "l0", 7), ("replay", "l1", 7)]


def test_failed_or_refused_captures_stay_direct(monkeypatch):
    monkeypatch.setattr(driver, "ensure_context", lambda i: None)
    log = []
    xp, _ = _plan(log)
    bound = steps.Bound(2)
    for _ in range(3):
        steps.run(xp, STREAM, bound=bound, layer_graphs=FakeGraphs(log, fail={"l1"}))
    assert bound[1] is False and isinstance(bound[0], FakeGraph)
    assert log[-2:] == [("replay", "l0", 7), ("call", "l1")]
    log2 = []
    xp2, _ = _plan(log2, capturable=False)  # e.g. a layer that reads device data on the host
    bound2 = steps.Bound(2)
    for _ in range(3):
        steps.run(xp2, STREAM, bound=bound2, layer_graphs=FakeGraphs(log2))
    assert bound2 == [False, False] and not any(e[0] == "capture" for e in log2)


def test_no_layer_graph_inside_another_capture(monkeypatch):
    monkeypatch.setattr(driver, "ensure_context", lambda i: None)
    log = []
    xp, _ = _plan(log)
    bound = steps.Bound(2)
    for _ in range(3):
        steps.run(xp, STREAM, bound=bound, layer_graphs=FakeGraphs(log))
    log.clear()
    steps.run(xp, STREAM, bound=bound, layer_graphs=None)  # a whole-plan capture: layers are called
    assert log == [("call", "l0"), ("call", "l1")]


def test_fast_path_fires_the_input_consumed_event_after_the_last_reader(monkeypatch):
    monkeypatch.setattr(driver, "ensure_context", lambda i: None)
    log = []
    xp, _ = _plan(log, n=3, consumed_at=0)
    bound = steps.Bound(3)
    for _ in range(2):
        steps.run(xp, STREAM, bound=bound, layer_graphs=FakeGraphs(log))
    log.clear()
    event = SimpleNamespace(record=lambda s: log.append(("event", s.cuda_stream)))
    steps.run(xp, STREAM, event=event, bound=bound, layer_graphs=FakeGraphs(log))
    assert log == [("replay", "l0", 7), ("event", 7), ("replay", "l1", 7), ("replay", "l2", 7)]


def _alloc_plan(log):
    """l0 allocates its output (no planned buffer); l1 reads it and writes a planned one."""
    x, y = torch.arange(4, dtype=torch.float32) + 1, torch.empty(4)

    def l0(args):
        log.append(("call", "l0"))
        return (args[0] * 2,)

    def l1(args, outs):
        log.append(("call", "l1"))
        torch.add(args[0], 1, out=outs[0])
        return outs
    launches = (Launch("l0", l0, False, (0,), (1,), (None,)), Launch("l1", l1, True, (1,), (2,), (y,)))
    return ExecPlan(("x", "t", "y"), (x, None, y), launches), y


def test_outputs_allocated_in_a_capture_are_kept_and_make_their_readers_capturable(monkeypatch):
    monkeypatch.setattr(driver, "ensure_context", lambda i: None)
    log = []
    xp, y = _alloc_plan(log)
    bound = steps.Bound(2)
    for _ in range(2):
        slots, _ = steps.run(xp, STREAM, bound=bound, layer_graphs=FakeGraphs(log))
    assert isinstance(bound[0], FakeGraph) and isinstance(bound[1], FakeGraph)
    assert 1 in bound.fixed and bound[0].outs[0][1] is bound.fixed[1] and slots[1] is bound.fixed[1]
    assert torch.equal(y, (torch.arange(4) + 1) * 2.0 + 1)
    log.clear()
    steps.run(xp, STREAM, bound=bound, layer_graphs=FakeGraphs(log))
    assert log == [("replay", "l0", 7), ("replay", "l1", 7)]


def test_a_reader_of_an_uncaptured_allocation_is_not_captured(monkeypatch):
    monkeypatch.setattr(driver, "ensure_context", lambda i: None)
    log = []
    xp, y = _alloc_plan(log)
    bound = steps.Bound(2)
    for _ in range(3):
        steps.run(xp, STREAM, bound=bound, layer_graphs=FakeGraphs(log, fail={"l0"}))
    assert bound[0] is False and bound[1] is False and not bound.fixed  # t moves every run
    assert log[-2:] == [("call", "l0"), ("call", "l1")]
    assert torch.equal(y, (torch.arange(4) + 1) * 2.0 + 1)


def test_kept_outputs_are_capped(monkeypatch):
    monkeypatch.setattr(driver, "ensure_context", lambda i: None)
    from tensorforge.runtime.layer_graphs import LayerGraphs
    lg = LayerGraphs("cpu", max_kept_bytes=8)
    t = torch.empty(4)  # 16 bytes
    assert lg.keep(((1, t),)) is None and lg.kept_bytes == 0
    assert lg.keep(((1, torch.empty(2)),)) == 8 and lg.kept_bytes == 8
    lg.release(8)
    assert lg.kept_bytes == 0
    log = []
    xp, y = _alloc_plan(log)
    graphs = FakeGraphs(log)
    graphs.keep = lambda outs: None
    bound = steps.Bound(2)
    for _ in range(3):
        steps.run(xp, STREAM, bound=bound, layer_graphs=graphs)
    assert bound[0] is False and bound[1] is False
    assert torch.equal(y, (torch.arange(4) + 1) * 2.0 + 1)


def test_multi_stream_fast_path_waits_and_records_with_raw_handles(monkeypatch):
    """Aux-stream plans, every launch pre-bound: per launch its event waits, its replay on its own
    stream's handle, its event record, in plan order (no torch stream context per launch)."""
    monkeypatch.setattr(driver, "ensure_context", lambda i: None)
    log = []
    lib = SimpleNamespace(cuStreamWaitEvent=lambda h, e, f: log.append(("wait", h.value, e.value)) or 0,
                          cuEventRecord=lambda e, h: log.append(("record", e.value, h.value)) or 0)
    monkeypatch.setattr(driver, "libcuda", lambda: lib)
    x = torch.ones(4)
    bufs = [torch.empty(4) for _ in range(2)]
    fn = lambda args, outs: outs  # noqa: E731
    launches = (Launch("a", fn, True, (0,), (1,), (bufs[0],), stream=0, record=True),
                Launch("b", fn, True, (0,), (2,), (bufs[1],), stream=1, waits=(0,), record=True))
    xp = ExecPlan(("x", "a", "b"), (x, *bufs), launches, aux=(1,), last_on=((1, 1),))
    main = SimpleNamespace(cuda_stream=7, device=SimpleNamespace(index=0),
                           wait_event=lambda e: log.append(("join", e.cuda_event)))
    aux = SimpleNamespace(cuda_stream=9, wait_event=lambda e: log.append(("fork", e.cuda_event)))
    events = {}
    ss = SimpleNamespace(stream=lambda s, m: m if s == 0 else aux, event=lambda k: events.setdefault(
        k, SimpleNamespace(cuda_event=100 + (k if isinstance(k, int) else 50), record=lambda s: None)))
    bound = steps.Bound(2)
    bound[0], bound[1] = FakeGraph(log, "a"), FakeGraph(log, "b")
    steps.run(xp, main, ss=ss, bound=bound, layer_graphs=FakeGraphs(log))
    assert log == [("fork", 150), ("replay", "a", 7), ("record", 100, 7), ("wait", 9, 100), ("replay", "b", 9), ("record", 101, 9),
                   ("join", 101)]


def test_a_replay_bound_at_the_first_run_becomes_a_layer_graph_at_the_second(monkeypatch):
    monkeypatch.setattr(driver, "ensure_context", lambda i: None)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda *a: SimpleNamespace(cuda_stream=5))
    log = []
    xp, _ = _plan(log, n=1)
    xp.launches[0].fn.bind = lambda ins, outs: (lambda h: log.append(("bound", h)))
    bound = steps.Bound(1)
    steps.run(xp, STREAM, bound=bound, layer_graphs=FakeGraphs(log))
    assert log == [("bound", 7)] and bound.promote == {0}
    log.clear()

    class Graphs(FakeGraphs):
        def capture(self, fn, stream_id):
            fn()
            return FakeGraph(self.log, "g0")
    steps.run(xp, STREAM, bound=bound, layer_graphs=Graphs(log))
    assert log == [("bound", 5), ("replay", "g0", 7)] and not bound.promote and isinstance(bound[0], FakeGraph)


def test_evicted_plans_give_back_their_kept_bytes():
    """A context's kept-output total counts only plans still in its LRU."""
    from collections import OrderedDict

    import torch

    from tensorforge.runtime.allocator import ContextMemory
    from tensorforge.runtime.context_io import ContextIO
    from tensorforge.runtime.layer_graphs import LayerGraphs
    ctx = ContextIO.__new__(ContextIO)
    ctx.layer_graphs = LayerGraphs("cpu")
    ctx._mem = ContextMemory(None, torch.device("cpu"))  # what every context has
    ctx._plans, ctx._graphs, ctx._valid, ctx._prepared_key = OrderedDict(), {}, set(), None
    for key, n in (("a", 100), ("b", 50)):
        b = steps.Bound(1)
        b.kept_bytes = n
        ctx._plans[key] = (None, {}, b)
        ctx._valid.add(key)
        ctx.layer_graphs.kept_bytes += n
    ctx._drop_oldest_plan()
    assert ctx.layer_graphs.kept_bytes == 50 and list(ctx._plans) == ["b"] and ctx._valid == {"b"}
    ctx._forget_plans()
    assert ctx.layer_graphs.kept_bytes == 0 and not ctx._plans
