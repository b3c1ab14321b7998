"""Progress for long work (tactic timing, benchmark loops): one self-overwriting line with an ETA when
stdout is a terminal; nothing otherwise, so logs and pipes keep only their usual lines."""
from __future__ import annotations

import sys
import time


def is_tty(stream) -> bool:
    """True when stream is an interactive terminal."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class Progress:
    """`label: done/total unit (pct %, ETA s)`, redrawn at most every `interval_s`; close() erases it."""

    def __init__(self, label: str, total: float, unit: str = "", stream=None, enabled: bool | None = None,
                 clock=time.monotonic, interval_s: float = 0.1):
        self.label, self.total, self.unit = label, total, unit
        self.stream = stream if stream is not None else sys.stdout
        self.enabled = is_tty(self.stream) if enabled is None else enabled
        self.clock, self.interval = clock, interval_s
        self.t0 = clock()
        self.last = None
        self.width = 0

    def text(self, done: float) -> str:
        """The progress line for `done` of total."""
        frac = min(max(done / self.total, 0.0), 1.0) if self.total else 1.0
        elapsed = self.clock() - self.t0
        eta = f", ETA {elapsed * (1 - frac) / frac:.1f} s" if 0 < frac < 1 else ""
        count = f"{done:g}/{self.total:g} {self.unit} " if self.unit else ""
        return f"{self.label}: {count}({frac:.0%}{eta})"

    def update(self, done: float) -> None:
        """Redraw the line (rate-limited; always at the end)."""
        if not self.enabled:
            return
        now = self.clock()
        if self.last is not None and now - self.last < self.interval and done < self.total:
            return
        self.last = now
        line = self.text(done)
        self.stream.write("\r" + line.ljust(self.width))
        self.stream.flush()
        self.width = max(self.width, len(line))

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Erase the line so the next output starts clean."""
        if self.enabled and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0
