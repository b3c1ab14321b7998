"""JSON exports with trtexec's layout: --exportTimes, --exportOutput, and the --dumpOutput text."""
from __future__ import annotations

import json
import math

import numpy as np

from .log import fmt
from .shapes import fmt_dims
from .stats import Trace, to_timing


def _num(x) -> str:
    """Format a number for JSON (%g; NaN/Infinity spelled as Python's json module reads them)."""
    if isinstance(x, (bool, np.bool_)):
        return str(int(x))
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return fmt(x)


def times_json(traces: list[Trace], warmups: int) -> str:
    """The --exportTimes file: one object per timed query, in h2dStart order."""
    lines, sep = ["["], "  "
    for t in traces[warmups:]:
        it = to_timing(t)
        fields = [("startEnqMs", t.enqStart), ("endEnqMs", t.enqEnd), ("startH2dMs", t.h2dStart),
                  ("endH2dMs", t.h2dEnd), ("startComputeMs", t.computeStart), ("endComputeMs", t.computeEnd),
                  ("startD2hMs", t.d2hStart), ("endD2hMs", t.d2hEnd), ("h2dMs", it.h2d), ("computeMs", it.compute),
                  ("d2hMs", it.d2h), ("latencyMs", it.latency())]
        body = ", ".join(f'"{k}" : {_num(v)}' for k, v in fields)
        lines.append(f"{sep}{{ {body} }}")
        sep = ", "
    lines.append("]")
    return "\n".join(lines) + "\n"


def _flat(arr: np.ndarray) -> list:
    """Flatten an output array in logical (row-major) order."""
    return np.ascontiguousarray(arr).reshape(-1).tolist()


def output_json(outputs: dict[str, np.ndarray]) -> str:
    """The --exportOutput file: [{"name", "dimensions": "AxB", "values": [...]}, ...]."""
    lines, sep = ["["], "  "
    for name, arr in outputs.items():
        lines.append(f'{sep}{{ "name" : {json.dumps(name)}')
        sep = ", "
        lines.append(f'  {sep}"dimensions" : "{fmt_dims(arr.shape)}"')
        lines.append(f'  {sep}"values" : [ ' + sep.join(_num(v) for v in _flat(arr)) + " ]")
        lines.append("  }")
    lines.append("]")
    return "\n".join(lines) + "\n"


def dump_output_lines(outputs: dict[str, np.ndarray]) -> list[str]:
    """The --dumpOutput lines: `Output Tensors:`, then `name: (AxB)` and one line of values per output."""
    lines = ["Output Tensors:"]
    for name, arr in outputs.items():
        lines.append(f"{name}: ({fmt_dims(arr.shape)})")
        lines.append(" ".join(_num(v) for v in _flat(arr)))
    return lines


def write_text(path: str, text: str) -> None:
    """Write a file atomically (exclusive temp file + rename), turning OS errors into one-line messages."""
    from tensorforge.fileio import atomic_write
    atomic_write(path, text.encode("utf-8"), "file")
