"""ExecPlan: what one inference at one shape set does, as immutable data.

A flat list of pre-bound launches, each naming its kernel, its argument slots (integers into the
plan's slot table), the output buffers it writes (or None where the kernel allocates), its stream,
the events it waits on and records, and the slots released after it. Built by `build`, a pure
function of (engine plan, kernels, slots at these shapes: weights, bindings, arena views), kept in
the context's LRU, run eagerly by runtime.steps or captured into a CUDA graph the same way."""
from __future__ import annotations

from dataclasses import dataclass

from ..kernels import writes_in_place
from . import streams as st


@dataclass(frozen=True)
class Launch:
    """One pre-bound layer launch."""
    name: str
    fn: object  # fn(args[, outs]) -> outputs
    takes_out: bool  # declared per tactic (kernels.writes_in_place): fn(args, planned) writes them
    ins: tuple  # slot per input (-1: absent)
    outs: tuple  # slot per output
    planned: tuple  # output buffer per output, or None (kernel-allocated, data-dependent)
    stream: int = 0
    waits: tuple = ()  # launch indices whose events this one waits on (aux streams)
    record: bool = False  # records its event after it
    release: tuple = ()  # slots dropped after it (sequential runs)


@dataclass(frozen=True)
class ExecPlan:
    """Slots and launches of one shape set (see the module docstring)."""
    names: tuple  # slot index -> tensor name
    initial: tuple  # slot index -> tensor (weights, bindings, arena views, plan-time views) or None
    launches: tuple
    aux: tuple = ()  # aux streams used (empty: all launches on the caller's stream)
    last_on: tuple = ()  # (aux stream, index of its last launch) pairs: the final join
    consumed_at: int = -1  # index of the last launch reading a graph input
    consumed_streams: tuple = ()  # (stream, launch index) of the last input reader per stream
    has_dynamic: bool = False  # data-dependent shapes: no CUDA graph, no aux streams
    arena_bytes: int = 0

    def slot(self, name: str) -> int:
        return self.names.index(name)

    def __str__(self) -> str:
        rows = [f"ExecPlan: {len(self.launches)} launches, {len(self.names)} slots, aux streams "
                f"{list(self.aux)}, input consumed after launch {self.consumed_at}"]
        for k, L in enumerate(self.launches):
            ins = ", ".join(self.names[i] if i >= 0 else "-" for i in L.ins)
            outs = ", ".join(f"{self.names[o]}{'' if p is not None else '*'}" for o, p in zip(L.outs, L.planned))
            extra = (f" s{L.stream}" if L.stream else "") + (f" wait{list(L.waits)}" if L.waits else "") + \
                (" record" if L.record else "") + \
                (f" release[{', '.join(self.names[r] for r in L.release)}]" if L.release else "")
            rows.append(f"{k:4d} {L.name}: ({ins}) -> ({outs}){extra}")
        return "\n".join(rows)


def build(plan, kernels: dict, slots: dict, device, multi_stream: bool, arena_bytes: int = 0,
          to_device=None) -> ExecPlan:
    """The ExecPlan of `plan` given `slots` {tensor name: tensor or None} at these shapes (weights,
    shape tensors, bound I/O, arena views; device/host copies of constants are added here, device
    ones by `to_device(host tensor)` when given: a context's user allocator).

    View layers whose inputs are known become slots (aliases), not launches. multi_stream: run on
    the plan's aux streams (CUDA, no data-dependent shapes). Pure: reads its arguments only."""
    slots = dict(slots)
    steps, alias = [], {}
    for lay in plan.layers:
        fn = kernels[lay.name]
        if lay.mode == "view" and all(slots.get(i) is not None for i in lay.inputs if i):
            slots[lay.outputs[0]] = fn([slots[i] if i else None for i in lay.inputs])[0]
            alias[lay.outputs[0]] = alias.get(lay.inputs[0], lay.inputs[0])
            continue
        ins = [_device_input(slots, x, j, lay, device, plan.tensors, to_device) for j, x in enumerate(lay.inputs)]
        steps.append((lay, ins))
    has_dynamic = any(plan.tensors[o].dynamic for lay, _ in steps for o in lay.outputs if o in plan.tensors) or \
        any(getattr(kernels[lay.name], "capturable", True) is False for lay, _ in steps)  # host syncs: eager
    stream_ids = [lay.stream for lay, _ in steps]
    multi = multi_stream and any(stream_ids) and not has_dynamic
    names = list(slots)
    for lay, ins in steps:
        names += [n for n in list(ins) + list(lay.outputs) if n and n not in slots and n not in names]
    index = {n: i for i, n in enumerate(names)}
    sched = st.schedule(stream_ids, [i for _, i in steps], [lay.outputs for lay, _ in steps], alias) if multi else None
    readers: dict = {}
    graph_inputs = set(plan.inputs)
    for k, (lay, ins) in enumerate(steps):
        if any(n and alias.get(n, n) in graph_inputs for n in ins):
            readers[stream_ids[k] if multi else 0] = k
    if multi:
        for k in readers.values():
            sched.record[k] = True
    release = _releases(plan, steps, slots) if not multi else [[] for _ in steps]
    launches = []
    for k, (lay, ins) in enumerate(steps):
        fn = kernels[lay.name]
        launches.append(Launch(
            lay.name, fn, writes_in_place(lay.tactic), tuple(index[n] if n else -1 for n in ins),
            tuple(index[o] for o in lay.outputs), tuple(slots.get(o) for o in lay.outputs),
            sched.stream[k] if multi else 0, tuple(sched.waits[k]) if multi else (),
            bool(sched.record[k]) if multi else False, tuple(index[n] for n in release[k])))
    return ExecPlan(tuple(names), tuple(slots.get(n) for n in names), tuple(launches),
                    tuple(sched.aux) if multi else (), tuple(sorted(sched.last_on.items())) if multi else (),
                    max(readers.values(), default=-1), tuple(sorted(readers.items())), has_dynamic, arena_bytes)


def _releases(plan, steps, slots) -> list:
    """Per step, the names to drop after it: tensors taken from their kernel (kernel-allocated
    outputs and views of them) die at their last reader, so the allocator reuses their memory."""
    taken = {o for lay, _ in steps for o in lay.outputs if slots.get(o) is None} - set(plan.outputs)
    last = {}
    for k, (_, ins) in enumerate(steps):
        for n in ins:
            if n in taken:
                last[n] = k
    rel = [[] for _ in steps]
    for n, k in last.items():
        rel[k].append(n)
    return rel


def _device_input(slots, name, j, lay, device, tensors, to_device=None):
    """Slot name for input j; a host tensor read as device data gets a device copy and a device
    weight read as a host input (a constant some other layer reads on the device) a host copy,
    once per plan: no host sync at run time (CUDA-graph capturable)."""
    if not name or device.type != "cuda":
        return name
    if j in lay.host_inputs:
        t, spec = slots.get(name), tensors.get(name)
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
        slots[key] = to_device(t) if to_device is not None else t.to(device)
    return key
