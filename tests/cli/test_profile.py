"""Per-layer profiler: iteration detection, table (golden) and JSON export."""
from __future__ import annotations

import json

from tensorforge.cli.forgeexec.profile import Profiler


def _profiled():
    p = Profiler()
    for it in range(4):
        p.report_layer_time("conv1 + relu1", 1.0 + it * 0.5)   # 1.0 1.5 2.0 2.5
        p.report_layer_time("pool", 0.25)
        p.report_layer_time("noop", 0.0)
        p.report_layer_time("fc", 0.5 if it < 3 else 1.25)
    return p


def test_iterations_counted_by_first_layer():
    p = _profiled()
    assert p.updates == 4 and [l.name for l in p.layers] == ["conv1 + relu1", "pool", "noop", "fc"]
    assert all(len(l.times) == 4 for l in p.layers)


def test_table_golden():
    assert _profiled().table() == [
        "",
        "=== Profile (4 iterations ) ===",
        "   Time(ms)   Avg.(ms)   Median(ms)   Time(%)   Layer",
        "       7.00     1.7500       1.7500      65.1   conv1 + relu1",
        "       1.00     0.2500       0.2500       9.3   pool",
        "       2.75     0.6875       0.5000      25.6   fc",
        "      10.75     2.6875       2.5000     100.0   Total",
        "",
    ]


def test_json_keeps_zero_layers_and_has_no_total():
    data = json.loads(_profiled().json())
    assert data[0] == {"count": 4}
    assert [d["name"] for d in data[1:]] == ["conv1 + relu1", "pool", "noop", "fc"]
    fc = data[4]
    assert fc == {"name": "fc", "timeMs": 2.75, "averageMs": 0.6875, "medianMs": 0.5, "percentage": 25.5814}
    assert set(data[1]) == {"name", "timeMs", "averageMs", "medianMs", "percentage"}


def test_json_layout():
    text = _profiled().json().splitlines()
    assert text[0] == "[" and text[1] == '  { "count" : 4 }' and text[2].startswith(', { "name" : "conv1 + relu1"')
    assert text[-1] == "]"
