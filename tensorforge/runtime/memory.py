"""Static memory planning: activation buffers with lifetimes -> offsets in one arena."""
from __future__ import annotations

from dataclasses import dataclass

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
