"""Pass instrumentation: per-pass wall time and node counts, per-rule fire and decline counts.

run_pipeline opens one PassRecord per pass; the rule driver (rewrite.apply_rules) reports into
the active one through `fired` / `declined`, so no pass needs its own bookkeeping."""
from __future__ import annotations

import contextvars
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field

_ACTIVE: contextvars.ContextVar = contextvars.ContextVar("tensorforge_pass_record", default=None)


@dataclass
class PassRecord:
    """What one pass did: time, node counts, rule fires and (deduplicated) declines with reasons."""
    name: str
    nodes_before: int
    nodes_after: int = 0
    seconds: float = 0.0
    fires: Counter = field(default_factory=Counter)  # rule -> count
    declines: Counter = field(default_factory=Counter)  # (rule, reason) -> distinct roots declined
    _seen: set = field(default_factory=set, repr=False)

    def lines(self) -> list[str]:
        """Human-readable summary: one line for the pass, one per rule outcome."""
        out = [f"pass {self.name}: {self.seconds * 1e3:.2f} ms, nodes {self.nodes_before} -> {self.nodes_after}"]
        out += [f"  rule {r}: fired {n}" for r, n in sorted(self.fires.items())]
        out += [f"  rule {r}: declined {n} ({why})" for (r, why), n in sorted(self.declines.items())]
        return out


@dataclass
class PipelineStats:
    """The records of one pipeline run, in pass order."""
    passes: list = field(default_factory=list)

    def lines(self) -> list[str]:
        total = sum(p.seconds for p in self.passes)
        head = [f"Optimizer passes: {len(self.passes)} in {total * 1e3:.2f} ms"]
        return head + [line for p in self.passes for line in p.lines()]

    def format(self) -> str:
        return "\n".join(self.lines())

    @contextmanager
    def record(self, name: str, g):
        """Time the pass run inside the block and make its record the active one."""
        rec = PassRecord(name, len(g.nodes))
        token = _ACTIVE.set(rec)
        t0 = time.perf_counter()
        try:
            yield rec
        finally:
            rec.seconds = time.perf_counter() - t0
            _ACTIVE.reset(token)
            self.passes.append(rec)


def fired(rule: str) -> None:
    """Count one firing of `rule` in the active pass (if any)."""
    rec = _ACTIVE.get()
    if rec is not None:
        rec.fires[rule] += 1


def declined(rule: str, root: str, reason: str) -> None:
    """Count `rule` declining at node `root` for `reason` (each root once per reason and pass:
    the fixpoint driver retries the same matches every sweep)."""
    rec = _ACTIVE.get()
    if rec is not None and (rule, root, reason) not in rec._seen:
        rec._seen.add((rule, root, reason))
        rec.declines[(rule, reason)] += 1


class Decline:
    """A rewrite's refusal and its reason; falsy, so it reads as `False` wherever a bool is expected."""
    __slots__ = ("reason",)

    def __init__(self, reason: str):
        self.reason = reason

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"Decline({self.reason!r})"
