"""Static memory planning: activation buffers with lifetimes -> offsets in one arena."""
from __future__ import annotations

from dataclasses import dataclass

from .. import kernels

ALIGN = 256


@dataclass
class Buffer:
    name: str
    size: int  # bytes
    first: int  # index of the step that writes it
    last: int  # index of the last step that reads it (or an alias of it)


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def plan(buffers: list[Buffer]) -> tuple[dict[str, int], int]:
    """Greedy-by-size placement: returns ({name: offset}, arena bytes). Pure function."""
    placed: list[tuple[int, int, Buffer]] = []  # (offset, end, buffer)
    offsets: dict[str, int] = {}
    for b in sorted(buffers, key=lambda b: (-b.size, b.first, b.name)):
        size = _align(max(b.size, 1))
        busy = sorted((o, e) for o, e, p in placed if not (p.last < b.first or b.last < p.first))
        off = 0
        for o, e in busy:
            if off + size <= o:
                break
            off = max(off, e)
        placed.append((off, off + size, b))
        offsets[b.name] = off
    total = max((e for _, e, _ in placed), default=0)
    return offsets, total


def total_unshared(buffers: list[Buffer]) -> int:
    """Bytes needed if every activation had its own buffer (the no-reuse baseline)."""
    return sum(_align(max(b.size, 1)) for b in buffers)


def concurrent_lifetimes(access: dict, horizon: list) -> dict:
    """{buffer: (first, last)} from each buffer's accessing steps, `last` extended to the last step
    that may run concurrently with any access (horizon[i]; i itself when steps run in order).

    The planner shares memory only between buffers with disjoint [first, last]; after this
    extension, a buffer written after `last` is written only once every access of this one has
    completed, whatever the streams. Pure function."""
    return {n: (min(a), max(horizon[i] for i in a)) for n, a in access.items() if a}


def kernel_allocated(plan) -> set:
    """Activations the runtime takes straight from their kernel (no arena buffer, no copy).

    A kernel that cannot write into a given buffer (cuDNN convs, SDPA, torch references) returns a
    fresh tensor; copying it into the arena would cost one more write and read per layer. Such
    outputs are handed to their consumers as they are and released after their last use, so the
    caching allocator (also inside CUDA-graph capture) reuses their memory. Kept in the arena:
    graph outputs, outputs of tactics that write in place (kernels.writes_in_place), and
    data-dependent tensors. With auxiliary streams nothing is released inside an inference
    (runtime.steps): a tensor is freed when the next inference overwrites its slot, and that
    inference's streams first wait for the join of every stream of this one, so no block is reused
    before its last reader on another stream finished."""
    if plan.config.get("activation_memory", "arena") != "direct":
        return set()
    outs = set(plan.outputs)
    keep = set()
    for lay in plan.layers:
        if lay.mode != "kernel" or kernels.writes_in_place(lay.tactic):
            continue
        for o in lay.outputs:
            t = plan.tensors.get(o)
            if o and o not in outs and t is not None and t.kind == "activation" and not t.dynamic:
                keep.add(o)
    return keep


def lifetimes(plan, exclude=frozenset()) -> dict:
    """{activation: (first step, last step)} over plan.layers, view aliases folded into their root
    buffer, extended across steps that may run concurrently on other streams; `exclude` lists
    buffers (roots) that live outside the arena."""
    from .streams import horizon, view_roots
    root = view_roots(plan.layers)
    access: dict = {}
    for i, lay in enumerate(plan.layers):
        for n in list(lay.inputs) + [o for o in lay.outputs if o not in root]:
            if n:
                access.setdefault(root.get(n, n), []).append(i)
    keep = {n: a for n, a in access.items() if n not in exclude
            and n in plan.tensors and plan.tensors[n].kind == "activation" and not plan.tensors[n].dynamic}
    return concurrent_lifetimes(keep, horizon(plan.layers))
