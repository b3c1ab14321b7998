"""Per-layer profiler (trtexec's Profiler): collection by first-layer wrap-around, table and JSON export."""
from __future__ import annotations

import json

from .log import fmt
from .stats import F32, f32_sum, median

HEADERS = ("   Time(ms)", "   Avg.(ms)", "   Median(ms)", "   Time(%)", "   Layer")


class LayerProfile:
    """Name and the list of times (ms) of one layer."""

    def __init__(self, name: str):
        self.name = name
        self.times: list = []

    def total(self):
        """Sum of the layer's times (float32)."""
        return f32_sum(self.times)

    def average(self):
        """Total divided by the number of times."""
        return F32(self.total() / F32(len(self.times))) if self.times else F32(0)

    def median(self):
        """Median of the layer's times."""
        return median(sorted(F32(t) for t in self.times)) if self.times else F32(0)


class Profiler:
    """Collects report_layer_time calls; an iteration ends when the first layer's name comes again."""

    def __init__(self):
        self.layers: list[LayerProfile] = []
        self.updates = 0
        self._it = 0  # index of the next expected layer; == len(layers) at the end of an iteration

    def report_layer_time(self, name: str, ms: float) -> None:
        """Record one layer time (called by the execution context in layer order)."""
        if self._it == len(self.layers):
            first = bool(self.layers) and self.layers[0].name == name
            self.updates += 1 if (not self.layers or first) else 0
            if first:
                self._it = 0
            else:
                self.layers.append(LayerProfile(name))
        self.layers[self._it].times.append(F32(ms))
        self._it += 1

    def total(self):
        """Sum of all layers' totals."""
        acc = F32(0)
        for layer in self.layers:
            acc = F32(acc + layer.total())
        return acc

    def median_total(self):
        """Median over iterations of the per-iteration sum of layer times."""
        if not self.layers:
            return F32(0)
        runs = []
        for r in range(len(self.layers[0].times)):
            acc = F32(0)
            for layer in self.layers:
                acc = F32(acc + (layer.times[r] if r < len(layer.times) else F32(0)))
            runs.append(acc)
        return median(sorted(runs))

    def table(self) -> list[str]:
        """The `=== Profile (N iterations ) ===` table with a Total row."""
        w = [len(h) for h in HEADERS]
        total = self.total()
        lines = ["", f"=== Profile ({self.updates} iterations ) ===", "".join(HEADERS)]
        for layer in self.layers:
            t = layer.total()
            if not layer.times or t == 0:
                continue
            pct = F32(t / total * F32(100)) if total else F32(0)
            lines.append(f"{t:>{w[0]}.2f}{layer.average():>{w[1]}.4f}{layer.median():>{w[2]}.4f}"
                         f"{pct:>{w[3]}.1f}   {layer.name}")
        per_iter = F32(total / F32(self.updates)) if self.updates else F32(0)
        lines.append(f"{total:>{w[0]}.2f}{per_iter:>{w[1]}.4f}{self.median_total():>{w[2]}.4f}"
                     f"{100.0:>{w[3]}.1f}   Total")
        lines.append("")
        return lines

    def json(self) -> str:
        """The --exportProfile file: count first, then every layer (zero-time layers kept, no Total)."""
        total = self.total()
        lines = ["[", f'  {{ "count" : {self.updates} }}']
        for layer in self.layers:
            t = layer.total()
            pct = F32(t / total * F32(100)) if total else F32(0)
            lines.append(f', {{ "name" : {json.dumps(layer.name)}, "timeMs" : {fmt(t)}, "averageMs" : '
                         f'{fmt(layer.average())}, "medianMs" : {fmt(layer.median())}, "percentage" : {fmt(pct)} }}')
        lines.append("]")
        return "\n".join(lines) + "\n"
