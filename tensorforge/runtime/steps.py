"""The step list of an execution context for one shape set, and the loop that runs it (sequentially,
or on the main stream plus auxiliary streams with event waits at forks and joins)."""
from __future__ import annotations

import time

import torch

from .. import dtypes
from ..errors import TensorforgeError
from . import streams as st
from .shapes import eval_shape, eval_value


def build_steps(ctx) -> None:
    """Slots (tensor per name), steps, schedule and input-consumed point for ctx's current shapes."""
    p, dev = ctx.plan, ctx.device
    slots: dict = {}
    for name, t in p.tensors.items():
        if t.kind == "weight":
            slots[name] = ctx.engine.weights[name]
        elif t.kind == "shape":
            vals = [eval_value(v, ctx._env, t.dtype) for v in t.sym]
            slots[name] = torch.tensor(vals, dtype=dtypes.to_torch(t.dtype)).reshape(
                eval_shape(t.shape, ctx._env))
    for n in p.inputs:
        slots[n] = ctx._binding(n, ctx._shapes[n])
    for n in p.outputs:
        shp = ctx._shape_of(n)
        slots[n] = ctx._binding(n, shp) if shp is not None else None
    ctx._plan_arena(slots)
    steps, stream_ids, alias = [], [], {}
    for lay in p.layers:
        fn = ctx._kernels[lay.name]
        if lay.mode == "view" and all(slots.get(i) is not None for i in lay.inputs if i):
            slots[lay.outputs[0]] = fn([slots[i] if i else None for i in lay.inputs])[0]
            alias[lay.outputs[0]] = alias.get(lay.inputs[0], lay.inputs[0])
            continue
        ins = [_device_input(slots, x, j, lay, dev, p.tensors) for j, x in enumerate(lay.inputs)]
        outs = [slots.get(o) for o in lay.outputs]
        steps.append((lay.name, fn, ins, list(lay.outputs), outs, lay.mode == "view"))
        stream_ids.append(lay.stream)
    ctx._slots, ctx._steps, ctx._validated = slots, steps, False
    ctx._step_streams = stream_ids
    # data-dependent shapes need host syncs: no CUDA graph, no aux streams
    ctx._has_dynamic = any(p.tensors[o].dynamic for s in steps for o in s[3] if o in p.tensors)
    ctx._release = _releases(ctx, steps)
    _schedule(ctx, steps, stream_ids, alias)


def _releases(ctx, steps) -> list:
    """Per step, the slots to drop after it: tensors taken from their kernel (kernel-allocated
    outputs and views of them) die at their last reader, so the allocator reuses their memory."""
    taken = {o for s in steps for o, t in zip(s[3], s[4]) if t is None} - set(ctx.plan.outputs)
    last = {}
    for k, s in enumerate(steps):
        for n in s[2]:
            if n in taken:
                last[n] = k
    rel = [[] for _ in steps]
    for n, k in last.items():
        rel[k].append(n)
    return rel


def _device_input(slots, name, j, lay, dev, tensors=None):
    """Slot name for input j; a host tensor read as device data gets a device copy and a device
    weight read as a host input (a constant some other layer reads on the device) a host copy,
    once per plan: no host sync at run time (CUDA-graph capturable)."""
    if not name or dev.type != "cuda":
        return name
    if j in lay.host_inputs:
        t, spec = slots.get(name), (tensors or {}).get(name)
        if t is None or t.device.type != "cuda" or spec is None or spec.kind != "weight":
            return name
        key = f"{name}@host"
        if key not in slots:
            slots[key] = t.cpu()
        return key
    t = slots.get(name)
    if t is None or t.device.type == "cuda":
        return name
    key = f"{name}@device"
    if key not in slots:
        slots[key] = t.to(dev)
    return key


def _schedule(ctx, steps, stream_ids, alias) -> None:
    """Fork/join schedule (CUDA, aux streams, no data-dependent shapes) and input readers."""
    multi = ctx.device.type == "cuda" and any(stream_ids) and not ctx._has_dynamic
    ins = [s[2] for s in steps]
    ctx._sched = st.schedule(stream_ids, ins, [s[3] for s in steps], alias) if multi else None
    graph_inputs = set(ctx.plan.inputs)
    readers: dict = {}
    for k, names in enumerate(ins):
        if any(n and alias.get(n, n) in graph_inputs for n in names):
            readers[stream_ids[k] if multi else 0] = k
    ctx._consumed_at = max(readers.values(), default=-1)
    ctx._consumed_streams = readers
    if multi:
        for k in readers.values():
            ctx._sched.record[k] = True


def run_steps(ctx, stream, event) -> None:
    """Run (CPU) or enqueue (CUDA) every step; fire the input-consumed event when set."""
    steps, slots, prof, release = ctx._steps, ctx._slots, ctx.profiler, ctx._release
    sched = ctx._sched if (stream is not None and prof is None) else None
    ss = ctx._ss
    if sched is not None:
        ss.fork(sched, stream)
    if event is not None and ctx._consumed_at < 0:
        _fire(ctx, event, stream, None)
    marks, k = [], -1
    try:
        for k, step in enumerate(steps):
            if prof is not None:
                marks.append(_mark(stream))
            if sched is None:
                _exec(ctx, step, slots)
                for n in release[k]:
                    slots[n] = None
            else:
                cs = ss.stream(sched.stream[k], stream)
                for q in sched.waits[k]:
                    cs.wait_event(ss.event(q))
                with torch.cuda.stream(cs):
                    _exec(ctx, step, slots)
                if sched.record[k]:
                    ss.event(k).record(cs)
            if event is not None and k == ctx._consumed_at:
                _fire(ctx, event, stream, sched)
    except TensorforgeError:
        raise
    except Exception as e:  # first run of a shape set: name the layer (e.g. a bad shape-tensor value)
        if ctx._validated:
            raise
        msg = str(e).splitlines()[0][:300] if str(e) else ""
        raise TensorforgeError(f"layer '{steps[k][0]}' failed at these shapes: {type(e).__name__}: {msg}") from e
    if sched is not None:
        ss.join(sched, stream)
    ctx._validated = True
    if prof is not None:
        marks.append(_mark(stream))
        ctx._report(marks)


def _exec(ctx, step, slots) -> None:
    name, fn, ins, onames, outs, _ = step
    args = [slots[i] if i else None for i in ins]
    arena = ctx._arena_ptr
    res = fn(args, outs) if getattr(fn, "takes_out", False) else fn(args)
    for j, (o, r) in enumerate(zip(outs, res)):
        if o is None:
            if not ctx._validated:
                _check_planned(ctx, name, onames[j], r)
            if arena is not None and r.untyped_storage().data_ptr() == arena:
                r = r.clone()  # a view into the arena (Split, Slice, Transpose...) dies with its buffer
            slots[onames[j]] = r
        elif r is not o:
            if not ctx._validated:
                _check(name, onames[j], o, r)
            o.copy_(r)


def _check_planned(ctx, layer, name, r):
    """A kernel-allocated output must have the planned shape and dtype (data-dependent: any shape)."""
    t = ctx.plan.tensors.get(name)
    if t is None or t.dynamic:
        return
    shp = ctx._shape_of(name)
    if r.dtype != dtypes.to_torch(t.dtype) or (shp is not None and tuple(r.shape) != tuple(shp)):
        raise TensorforgeError(f"layer '{layer}': output '{name}' computed as {r.dtype}{list(r.shape)}, "
                               f"planned {t.dtype}{list(shp or t.shape)} (shape inference bug)")


def _fire(ctx, event, stream, sched) -> None:
    """Record the input-consumed event after the last input reader(s)."""
    if stream is None:
        if hasattr(event, "set"):
            event.set()
        return
    if sched is None:
        event.record(stream)
        return
    readers = ctx._consumed_streams
    if len(readers) == 1:
        (s, k), = readers.items()
        event.record(ctx._ss.stream(s, stream))
        return
    h = ctx._ss.stream("consumed", stream)  # joins the readers of every stream, delays none of them
    for k in readers.values():
        h.wait_event(ctx._ss.event(k))
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
