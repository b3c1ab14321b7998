"""Bounded seeded fuzz run (CI): every outcome but "clean" must be 0."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from .harness import run_cases, table
from .run import stream


def test_bounded_fuzz_run(tmp_path):
    for sub in ("eng", "onnx", "cli"):
        os.makedirs(tmp_path / sub)
    res = run_cases(stream(str(tmp_path), np.random.default_rng(0), bounded=True), timeout=20)
    print(table(res))
    bad = [(c.family, c.kind, c.target, k, d) for c, k, d in res if k != "clean"]
    assert len(res) > 150
    assert not bad, "\n".join(map(str, bad))


def test_inspect_into_closed_pipe_is_quiet(tmp_path):
    """`tensorforge inspect MODEL | head -1`: no BrokenPipeError traceback."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    cmd = f"{sys.executable} -m tensorforge.cli.main inspect zoo:bert_base_small | head -1"
    p = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": root})
    assert p.stdout.startswith("==== ONNX Model")
    assert "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr, p.stderr
