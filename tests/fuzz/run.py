"""Long fuzz run: `python3 -m tests.fuzz.run --minutes N [--seed S] [--out DIR]` prints the summary table."""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time

import numpy as np

from . import cli_cases, engine_cases, onnx_cases
from .harness import run_cases, table


def stream(workdir: str, rng, bounded: bool):
    """Cases of all three families, interleaved; bounded: the small CI set, else an endless supply."""
    if bounded:
        yield from engine_cases.cases(os.path.join(workdir, "eng"), rng, rounds=3)
        yield from onnx_cases.cases(os.path.join(workdir, "onnx"), rng, n=40, conformance=True)
        yield from cli_cases.cases(os.path.join(workdir, "cli"), rng, n=15)
        return
    yield from engine_cases.cases(os.path.join(workdir, "eng"), rng, rounds=10)
    yield from cli_cases.cases(os.path.join(workdir, "cli"), rng, n=0)
    for r in itertools.count():
        yield from engine_cases.cases(os.path.join(workdir, "eng"), rng, rounds=5, crafted=False)
        yield from onnx_cases.cases(os.path.join(workdir, "onnx"), rng, n=60)
        yield from cli_cases.cases(os.path.join(workdir, "cli"), rng, n=30)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m tests.fuzz.run", description=__doc__)
    ap.add_argument("--minutes", type=float, default=5.0, help="stop after this long (0: the bounded CI set)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=30.0, help="per-case timeout in seconds")
    ap.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--family", action="append", choices=("engine", "onnx", "cli"), help="only these families")
    ap.add_argument("-q", "--quiet", action="store_true", help="do not print each non-clean case")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tf-fuzz-") as tmp:
        work = a.out or tmp
        for sub in ("eng", "onnx", "cli"):
            os.makedirs(os.path.join(work, sub), exist_ok=True)
        rng = np.random.default_rng(a.seed)
        deadline = time.time() + a.minutes * 60 if a.minutes > 0 else None
        log = None if a.quiet else (lambda s: print(s, flush=True))
        keep = os.path.join(work, "failures")
        os.makedirs(keep, exist_ok=True)
        cases = (c for c in stream(work, rng, bounded=a.minutes <= 0) if not a.family or c.family in a.family)
        res = run_cases(cases, timeout=a.timeout, deadline=deadline, log=log, keep_dir=keep)
        print(table(res))
        bad = sum(1 for _, k, _ in res if k != "clean")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
