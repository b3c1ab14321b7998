"""Running an ExecPlan: every launch in order (CPU, or CUDA on the caller's stream), or on the main
stream plus auxiliary streams with event waits at forks and joins. Returns the slot list."""
from __future__ import annotations

import ctypes
import time

import torch

from ..errors import TensorforgeError


def run(xp, stream, ss=None, event=None, profiler=None, validated=True, arena_ptr=None, check=None, bound=None,
        start=0, stop=None, slots=None, layer_graphs=None):
    """Run (CPU) or enqueue (CUDA) every launch of `xp`; fire the input-consumed event when given.

    validated=False (first run of a plan): outputs are checked against the plan (`check(name, tensor)`
    for kernel-allocated ones) and a failing layer is named. bound (CUDA): per launch, None (not
    tried yet), False, or a replay(stream handle) of its fixed launches (the kernel's own `bind`, or
    its recorded driver launches: kernels.driver.Prebound), made at a launch's first run; or, for
    library layers, a runtime.layer_graphs.LayerGraph captured at its second run through
    `layer_graphs` (None: no layer graphs, e.g. while a whole-plan graph is being captured).
    Returns (slots, profile marks or None)."""
    # start/stop: launches[start:stop] only, continuing from `slots` (the slot list of the part before:
    # a CUDA graph replays the static prefix, then the dynamic tail runs eagerly from its slots)
    fresh = slots is None
    slots = list(xp.initial) if fresh else list(slots)
    multi = bool(xp.aux) and stream is not None and profiler is None
    if bound is not None and any(bound):  # replays call the driver: its context must be current here
        from ..kernels.driver import ensure_context
        ensure_context(stream.device.index if stream.device.index is not None else torch.cuda.current_device())
    if multi:
        _fork(ss, xp, stream)
    if event is not None and xp.consumed_at < 0:
        _fire(xp, ss, event, stream, multi)
    marks, k = ([] if profiler is not None else None), -1
    if bound is not None and marks is None and layer_graphs is not None and fresh and all(bound[start:stop]) \
            and not getattr(bound, "promote", None):
        if not multi:  # every launch pre-bound: no Python per layer beyond the replay
            _replay(xp, bound[start:stop], start, stream, ss, event)
            return slots, None
        if _replay_multi(xp, bound, start, stop, stream, ss, event):
            for s, k in xp.last_on:
                stream.wait_event(ss.event(k))
            return slots, None
    try:
        for k, L in enumerate(xp.launches[start:stop], start):
            if marks is not None:
                marks.append(_mark(stream))
            if not multi:
                _launch(xp, k, L, slots, validated, arena_ptr, check, bound, stream, layer_graphs)
                for n in L.release:
                    slots[n] = None
            else:
                cs = ss.stream(L.stream, stream)
                for q in L.waits:
                    cs.wait_event(ss.event(q))
                with torch.cuda.stream(cs):
                    _launch(xp, k, L, slots, validated, arena_ptr, check, bound, cs, layer_graphs)
                if L.record:
                    ss.event(k).record(cs)
            if event is not None and k == xp.consumed_at:
                _fire(xp, ss, event, stream, multi)
    except TensorforgeError:
        raise
    except Exception as e:  # first run of a shape set: name the layer (e.g. a bad shape-tensor value)
        if validated:
            raise
        msg = str(e).splitlines()[0][:300] if str(e) else ""
        raise TensorforgeError(f"layer '{xp.launches[k].name}' failed at these shapes: {type(e).__name__}: {msg}") \
            from e
    if multi:
        for s, k in xp.last_on:
            stream.wait_event(ss.event(k))
    if marks is not None:
        marks.append(_mark(stream))
    return slots, marks


class _Later:
    """bound[k] of a library layer before its capture: falsy, so it runs directly until then."""

    def __bool__(self):
        return False

    def __repr__(self):
        return "LATER"


LATER = _Later()


def _replay(xp, seq, start, stream, ss, event) -> None:
    """Launch every pre-bound entry of `seq` (launches start...) in order on `stream`, firing the
    input-consumed event after the last input reader as the layer-by-layer loop does."""
    h = stream.cuda_stream
    c = xp.consumed_at + 1 - start
    if event is None or not 0 < c <= len(seq):
        for b in seq:
            b(h)
        return
    for b in seq[:c]:
        b(h)
    _fire(xp, ss, event, stream, False)
    for b in seq[c:]:
        b(h)


class Bound(list):
    """Per launch of one ExecPlan: how it is pre-bound (None, False, LATER, a replay); `fixed`: the
    slots whose tensors stay put from run to run although no plan placed them (outputs a layer
    graph allocated when it was captured: its replays write them there again)."""

    def __init__(self, n: int):
        super().__init__([None] * n)
        self.fixed: dict = {}
        self.multi: dict = {}  # (main stream handle, start, stop) -> raw launch steps on aux streams
        self.promote: set = set()  # launches pre-bound at their first run, to become layer graphs
        self.kept_bytes = 0  # what this plan's layer graphs keep (released with the plan)


def _replay_multi(xp, bound, start, stop, stream, ss, event) -> bool:
    """As _replay on the main and aux streams: per launch, raw event waits, the replay on its stream's
    handle, a raw event record (ctypes, no torch stream contexts). False when an event does not exist
    yet (never recorded): the caller runs the launches one by one."""
    from ..kernels.driver import libcuda
    key = (stream.cuda_stream, start, stop)
    steps_ = bound.multi.get(key) if isinstance(bound, Bound) else None
    if steps_ is None:
        steps_ = []
        for k, L in enumerate(xp.launches[start:stop], start):
            h = ctypes.c_void_p(ss.stream(L.stream, stream).cuda_stream)
            waits = tuple(ctypes.c_void_p(ss.event(q).cuda_event) for q in L.waits)
            rec = ctypes.c_void_p(ss.event(k).cuda_event) if L.record else None
            if any(not w.value for w in waits) or (rec is not None and not rec.value):
                return False
            steps_.append((bound[k], h, h.value, waits, rec, k == xp.consumed_at))
        if isinstance(bound, Bound):
            bound.multi[key] = steps_
    lib = libcuda()
    wait, record = lib.cuStreamWaitEvent, lib.cuEventRecord
    for b, h, hv, waits, rec, consumed in steps_:
        for w in waits:
            if wait(h, w, 0):
                raise RuntimeError("cuStreamWaitEvent failed")
        b(hv)
        if rec is not None and record(rec, h):
            raise RuntimeError("cuEventRecord failed")
        if consumed and event is not None:
            _fire(xp, ss, event, stream, True)
    return True


def _launch(xp, k, L, slots, validated, arena_ptr, check, bound, stream, layer_graphs) -> None:
    """Launch k: its pre-bound launches, else the kernel (noting at its first run how to pre-bind
    it, and capturing a library layer's graph at its second)."""
    b = bound[k] if bound is not None else False
    if b:
        if layer_graphs is None and getattr(b, "graph", False):  # inside a capture: no graph launch
            _exec(L, slots, xp.names, validated, arena_ptr, check)
            return
        if layer_graphs is not None and k in getattr(bound, "promote", ()):
            # a cubin / cuBLASLt replay: one cuGraphLaunch costs less host time than its argument marshalling
            bound.promote.discard(k)
            g = layer_graphs.capture(lambda: b(torch.cuda.current_stream().cuda_stream), L.stream)
            if g is not None:
                g.outs, bound[k] = (), g
                b = g
        b(stream.cuda_stream)
        for o, t in getattr(b, "outs", ()):  # its kept outputs, for layers called directly
            slots[o] = t
        return
    if b is LATER:
        if layer_graphs is not None and _inputs_fixed(xp, L, bound, slots):
            g = layer_graphs.capture(lambda: _exec(L, slots, xp.names, True, arena_ptr, check), L.stream)
            outs = tuple((o, slots[o]) for o, p in zip(L.outs, L.planned) if p is None)
            kept = layer_graphs.keep(outs) if g is not None else None
            if kept is not None:
                bound[k], g.outs = g, outs
                bound.kept_bytes += kept
                for o, t in outs:
                    bound.fixed[o] = t
                g(stream.cuda_stream)
                return
        bound[k] = False
        _exec(L, slots, xp.names, validated, arena_ptr, check)
        return
    if b is None:
        bound[k] = False
        ins = [xp.initial[i] for i in L.ins if i >= 0]
        fixed = all(p is not None for p in L.planned) and all(t is not None for t in ins)
        if fixed and L.takes_out:
            bind = getattr(L.fn, "bind", None)  # a kernel that pre-binds itself (e.g. cuBLASLt)
            replay = bind([xp.initial[i] if i >= 0 else None for i in L.ins], L.planned) if bind else None
            if replay is not None:
                bound[k] = replay
                _promote_later(bound, k)
                replay(stream.cuda_stream)
                return
        from ..kernels.driver import recording
        with recording() as rec:
            res = _exec(L, slots, xp.names, validated, arena_ptr, check)
        in_place = fixed and L.takes_out and all(r is o for r, o in zip(res, L.planned))  # else a reference ran
        pre = in_place and rec.prebound(ins + list(L.planned))
        if pre:
            _promote_later(bound, k)
        bound[k] = pre or \
            (LATER if getattr(L.fn, "capturable", True) is not False and isinstance(bound, Bound) else False)
        return
    _exec(L, slots, xp.names, validated, arena_ptr, check)


def _promote_later(bound, k) -> None:
    """Replace launch k's replay by a layer graph of it at its next run (Bound lists only)."""
    if isinstance(bound, Bound):
        bound.promote.add(k)


def _inputs_fixed(xp, L, bound, slots) -> bool:
    """Every input of L is where it will be at every run: placed by the plan (weights, bindings,
    arena views) or kept by the layer graph that produced it."""
    for i in L.ins:
        if i >= 0 and xp.initial[i] is None and (i not in bound.fixed or bound.fixed[i] is not slots[i]):
            return False
    return True


def _exec(L, slots, names, validated, arena_ptr, check):
    """Run the kernel of L, bind its outputs into `slots`; returns what the kernel returned."""
    args = [slots[i] if i >= 0 else None for i in L.ins]
    res = L.fn(args, L.planned) if L.takes_out else L.fn(args)
    for j, o in enumerate(L.planned):
        r = res[j]
        if o is None:
            if not validated and check is not None:
                check(L.name, names[L.outs[j]], r)
            if arena_ptr is not None and isinstance(r, torch.Tensor) and r.untyped_storage().data_ptr() == arena_ptr:
                r = r.clone()  # a view into the arena (Split, Slice, Transpose...) dies with its buffer
            slots[L.outs[j]] = r
        elif r is not o:
            if not validated:
                _check(L.name, names[L.outs[j]], o, r)
            o.copy_(r)
    return res


def _fork(ss, xp, main) -> None:
    """Every aux stream used waits for the work enqueued on the main stream so far."""
    ev = ss.event("fork")
    ev.record(main)
    for s in xp.aux:
        ss.stream(s, main).wait_event(ev)


def _fire(xp, ss, event, stream, multi) -> None:
    """Record the input-consumed event after the last input reader(s)."""
    if stream is None:
        if hasattr(event, "set"):
            event.set()
        return
    if not multi:
        event.record(stream)
        return
    readers = xp.consumed_streams
    if len(readers) == 1:
        (s, k), = readers
        event.record(ss.stream(s, stream))
        return
    h = ss.stream("consumed", stream)  # joins the readers of every stream, delays none of them
    for _, k in readers:
        h.wait_event(ss.event(k))
    event.record(h)


def _mark(stream):
    if stream is None:
        return time.perf_counter()
    e = torch.cuda.Event(enable_timing=True)
    e.record(stream)
    return e


def _check(layer, name, o, r):
    if tuple(o.shape) != tuple(r.shape) or o.dtype != r.dtype:
        raise TensorforgeError(f"layer '{layer}': output '{name}' computed as {r.dtype}{list(r.shape)}, "
                               f"planned {o.dtype}{list(o.shape)} (shape inference bug)")
