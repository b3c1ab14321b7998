"""Streams within an inference: the layer DAG, the concurrency horizon (for memory planning) and the
fork/join schedule (which step waits on which event) used by the execution context.

Correctness does not depend on how layers are assigned to streams: the host enqueues steps in plan
(topological) order and every cross-stream data dependency becomes an event wait, so any assignment
is deadlock-free; the assignment only decides what may overlap.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


def view_roots(layers, skip=None) -> dict:
    """{view output: root tensor} for view layers (all of them, or the indices in `skip`)."""
    root = {}
    for i, lay in enumerate(layers):
        if lay.mode == "view" and lay.inputs and lay.inputs[0] and (skip is None or i in skip):
            src = lay.inputs[0]
            root[lay.outputs[0]] = root.get(src, src)
    return root


def layer_preds(layers) -> list[set]:
    """Per layer, the indices of the layers producing its inputs (views are ordinary nodes here)."""
    prod = {}
    preds = []
    for i, lay in enumerate(layers):
        preds.append({prod[n] for n in lay.inputs if n and n in prod})
        for o in lay.outputs:
            prod[o] = i
    return preds


def reachability(preds: list) -> np.ndarray:
    """reach[j, a]: layer a happens before layer j along `preds` edges (a DAG in plan order)."""
    n = len(preds)
    reach = np.zeros((n, n), dtype=bool)
    for j in range(n):
        for p in preds[j]:
            reach[j] |= reach[p]
            reach[j, p] = True
    return reach


def horizon(layers) -> list[int]:
    """For each layer i, the last layer index that may still run concurrently with i (i itself when
    none). Happens-before = data dependencies plus order on the same stream; views take no stream
    slot (they alias at prepare time and never run)."""
    n = len(layers)
    if n == 0 or all(lay.stream == 0 for lay in layers):
        return list(range(n))
    preds = [set(p) for p in layer_preds(layers)]
    last_on = {}
    for j, lay in enumerate(layers):
        if lay.mode != "view":
            if lay.stream in last_on:
                preds[j].add(last_on[lay.stream])
            last_on[lay.stream] = j
    conc = np.triu(~reachability(preds).T, k=1)  # conc[a, j]: j > a and a does not happen before j
    any_ = conc.any(axis=1)
    last = n - 1 - np.argmax(conc[:, ::-1], axis=1)
    return [int(last[a]) if any_[a] else a for a in range(n)]


@dataclass
class Schedule:
    """Per step: its stream, the steps whose events it waits on, whether it records an event."""
    stream: list
    waits: list
    record: list
    aux: list = field(default_factory=list)  # aux stream ids used
    last_on: dict = field(default_factory=dict)  # stream -> index of its last step


def schedule(steps_streams: list, steps_inputs: list, steps_outputs: list, alias: dict) -> Schedule:
    """Event waits for cross-stream dependencies, skipping those already implied transitively."""
    n = len(steps_streams)
    prod, waits, record = {}, [[] for _ in range(n)], [False] * n
    known: dict = {}  # stream -> {other stream: last step of it known complete}
    at: list = [None] * n  # snapshot of the stream's knowledge right after each step
    for k in range(n):
        s = steps_streams[k]
        kn = known.setdefault(s, {})
        need = {}
        for name in steps_inputs[k]:
            p = prod.get(alias.get(name, name)) if name else None
            if p is not None and steps_streams[p] != s:
                need[steps_streams[p]] = max(need.get(steps_streams[p], -1), p)
        for sp, p in sorted(need.items()):
            if kn.get(sp, -1) >= p:
                continue
            waits[k].append(p)
            record[p] = True
            for s2, q in at[p].items():
                if s2 != s and kn.get(s2, -1) < q:
                    kn[s2] = q
        kn[s] = k
        at[k] = dict(kn)
        for o in steps_outputs[k]:
            prod[o] = k
    last_on = {}
    for k, s in enumerate(steps_streams):
        last_on[s] = k
    for s, k in last_on.items():
        if s != 0:
            record[k] = True  # the main stream joins every aux stream at the end
    return Schedule(list(steps_streams), waits, record, sorted(s for s in last_on if s != 0), last_on)


class StreamSet:
    """The CUDA streams and events of one context (created lazily, reused across inferences)."""

    def __init__(self, device):
        self.device = device
        self.aux: dict = {}
        self.events: dict = {}
        self.start = None

    def stream(self, s, main):
        if s == 0:
            return main
        if s not in self.aux:
            self.aux[s] = torch.cuda.Stream(self.device)
        return self.aux[s]

    def event(self, key):
        if key not in self.events:
            self.events[key] = torch.cuda.Event()
        return self.events[key]

    def fork(self, sched: Schedule, main) -> None:
        """Every aux stream used waits for the work enqueued on the main stream so far."""
        if not sched.aux:
            return
        ev = self.event("fork")
        ev.record(main)
        for s in sched.aux:
            self.stream(s, main).wait_event(ev)

    def join(self, sched: Schedule, main) -> None:
        """The main stream waits for the last step of every aux stream."""
        for s in sched.aux:
            main.wait_event(self.event(sched.last_on[s]))


def pinned_empty(shape, dtype) -> torch.Tensor:
    """A page-locked host tensor (plain host memory without CUDA) for async host<->device copies."""
    t = torch.empty(tuple(shape), dtype=dtype)
    return t.pin_memory() if torch.cuda.is_available() else t
