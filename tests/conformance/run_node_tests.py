"""Run ONNX's backend node test cases through tensorforge (CPU) and summarize the failures.

    python tests/conformance/run_node_tests.py --out /tmp/conf.json [-k REGEX] [-j JOBS] [--timeout S]

Each case runs in a forked worker process with a per-case timeout, so a hang or a crash costs one
case, never the run. Outputs are compared as onnx.backend.test.runner does (its own
assert_similar_outputs, the case's rtol/atol: 1e-3 / 1e-7 by default).
"""
from __future__ import annotations

import argparse
import collections
import json
import multiprocessing as mp
import os
import re
import sys
import time
import traceback
import warnings
from multiprocessing.connection import wait

KINDS = ("unsupported_op", "unsupported_feature", "wrong_result", "random_op", "exception", "timeout", "crash")


def load_cases(pattern: str | None = None) -> list:
    """All node test cases, filtered by a regex on their names."""
    warnings.filterwarnings("ignore")
    from onnx.backend.test.loader import load_model_tests
    rx = re.compile(pattern) if pattern else None
    return [c for c in load_model_tests(kind="node") if rx is None or rx.search(c.name)]


def load_module_cases(modules) -> dict:
    """{module: its cases} for some onnx.backend.test.case.node modules (imports only those)."""
    import importlib
    import sys as _sys
    warnings.filterwarnings("ignore")
    from onnx.backend.test.case import node as pkg
    out = {}
    for m in modules:
        name = f"{pkg.__name__}.{m}"
        if name in _sys.modules:  # generated earlier: find its cases by their class's export names
            out[m] = [c for c in pkg._NodeTestCases if c.name.startswith(f"test_{m}")]
            continue
        before = len(pkg._NodeTestCases)
        importlib.import_module(name)
        out[m] = list(pkg._NodeTestCases[before:])
    return out


def primary_ops(cases) -> dict:
    """{case name: op type under test}; `_expanded` cases map to the op of their unexpanded twin."""
    single = {c.name: c.model.graph.node[0].op_type for c in cases if len(c.model.graph.node) == 1}
    out = {}
    for c in cases:
        base = re.sub(r"_expanded(_ver\d+)?$", "", c.name)
        ops = [n.op_type for n in c.model.graph.node]
        out[c.name] = single.get(c.name) or single.get(base) or (ops[-1] if ops else "?")
    return out


def _normalize(x):
    """TensorProto / sequences from the case data as numpy values (like onnx's runner)."""
    import onnx
    from onnx import numpy_helper
    if isinstance(x, onnx.TensorProto):
        return numpy_helper.to_array(x)
    if isinstance(x, list):
        return [_normalize(y) for y in x]
    return x


def _random(model) -> bool:
    """True when the model has an op whose output is random (registered deterministic=False)."""
    from tensorforge.ops import registry
    return any(registry.has(n.op_type, n.domain) and not registry.get(n.op_type, n.domain).deterministic
               for n in model.graph.node)


def classify(exc: BaseException, model=None) -> str:
    """Failure kind of an exception raised while building or running a case."""
    from tensorforge.errors import TensorforgeError, UnsupportedOpError
    if isinstance(exc, UnsupportedOpError):
        return "unsupported_op"
    if isinstance(exc, AssertionError):
        return "random_op" if model is not None and _random(model) else "wrong_result"
    if str(exc).startswith("layer '"):  # a kernel failed at run time: a bug, whatever its text
        return "exception"
    if isinstance(exc, TensorforgeError) and re.search(
            r"not supported|unsupported|only \w+ \w+ are supported|no default-domain opset", str(exc)):
        return "unsupported_feature"
    return "exception"


def run_case(case) -> dict | None:
    """Run one case; None on success, else {kind, error, op?}."""
    from onnx.backend.test.runner import Runner
    from tensorforge.backend import TensorforgeBackend
    try:
        rep = TensorforgeBackend.prepare(case.model, "CPU")
        for inputs, refs in case.data_sets:
            outs = rep.run([_normalize(x) for x in inputs])
            Runner.assert_similar_outputs([_normalize(r) for r in refs], outs, rtol=case.rtol,
                                          atol=case.atol, model_dir=case.name)
    except BaseException as e:  # noqa: BLE001 - every failure is data for the report
        kind = classify(e, case.model)
        msg = str(e).strip().splitlines()
        err = f"{type(e).__name__}: " + " | ".join(msg[:6])[:600]
        res = {"kind": kind, "error": err}
        m = re.search(r"unsupported ops?:? '(?:[\w.]+::)?(\w+)'", str(e))
        if kind == "unsupported_op" and m:
            res["op"] = m.group(1)
        if kind == "exception":
            res["trace"] = "".join(traceback.format_exception(e)[-3:])[-800:]
        return res
    return None


# ---- worker processes -------------------------------------------------------------------------
_CASES: list = []


def _worker(conn):
    import logging
    import torch
    torch.set_num_threads(1)
    logging.getLogger("tensorforge").setLevel(logging.ERROR)
    while True:
        i = conn.recv()
        if i is None:
            return
        conn.send((i, run_case(_CASES[i])))


class _Pool:
    """Forked workers fed one case index at a time; a worker past its deadline is killed and replaced."""

    def __init__(self, jobs: int, timeout: float):
        self.ctx = mp.get_context("fork")
        self.timeout = timeout
        self.workers = [self._spawn() for _ in range(jobs)]

    def _spawn(self):
        a, b = self.ctx.Pipe()
        p = self.ctx.Process(target=_worker, args=(b,), daemon=True)
        p.start()
        return {"proc": p, "conn": a, "case": None, "t0": 0.0}

    def run(self, indices, on_result):
        todo = collections.deque(indices)
        while todo or any(w["case"] is not None for w in self.workers):
            for w in self.workers:
                if w["case"] is None and todo:
                    w["case"], w["t0"] = todo.popleft(), time.monotonic()
                    w["conn"].send(w["case"])
            busy = [w for w in self.workers if w["case"] is not None]
            ready = wait([w["conn"] for w in busy], timeout=0.5)
            for k, w in enumerate(self.workers):
                if w["case"] is None:
                    continue
                if w["conn"] in ready:
                    try:
                        i, res = w["conn"].recv()
                    except (EOFError, OSError):
                        i, res = w["case"], {"kind": "crash", "error": "worker process died "
                                             f"(exit code {w['proc'].exitcode})"}
                        self._replace(k)
                    on_result(i, res)
                    self.workers[k]["case"] = None
                elif time.monotonic() - w["t0"] > self.timeout:
                    on_result(w["case"], {"kind": "timeout", "error": f"no result after {self.timeout:.0f} s"})
                    self._replace(k)

    def _replace(self, k):
        w = self.workers[k]
        if w["proc"].is_alive():
            w["proc"].kill()
        w["proc"].join(5)
        self.workers[k] = self._spawn()

    def close(self):
        for w in self.workers:
            try:
                w["conn"].send(None)
            except OSError:
                pass
            w["proc"].join(2)
            if w["proc"].is_alive():
                w["proc"].kill()


def run_all(cases, jobs=1, timeout=60.0, progress=False) -> list[dict]:
    """Run cases in workers; the list of failures ({name, op, ops, kind, error})."""
    global _CASES
    _CASES = cases
    prim = primary_ops(cases)
    failures, done = [], [0]

    def on_result(i, res):
        done[0] += 1
        if progress and done[0] % 100 == 0:
            print(f"  {done[0]}/{len(cases)} ...", file=sys.stderr, flush=True)
        if res is None:
            return
        c = cases[i]
        res = {"name": c.name, "op": res.pop("op", prim[c.name]),
               "ops": sorted({n.op_type for n in c.model.graph.node}), **res}
        failures.append(res)

    pool = _Pool(max(1, jobs), timeout)
    try:
        pool.run(range(len(cases)), on_result)
    finally:
        pool.close()
    return sorted(failures, key=lambda f: f["name"])


def summarize(n_cases: int, failures: list[dict], top: int = 60) -> str:
    """`N passed, N failed` plus failures by kind and by op type."""
    lines = [f"{n_cases - len(failures)} passed, {len(failures)} failed"]
    kinds = collections.Counter(f["kind"] for f in failures)
    lines.append("by kind: " + ", ".join(f"{k} {kinds[k]}" for k in KINDS if kinds[k]))
    by_op = collections.defaultdict(collections.Counter)
    for f in failures:
        by_op[f["op"]][f["kind"]] += 1
    lines.append("by op (failures: kinds):")
    for op, cnt in sorted(by_op.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))[:top]:
        detail = ", ".join(f"{k} {v}" for k, v in cnt.most_common())
        lines.append(f"  {op:28s} {sum(cnt.values()):4d}  ({detail})")
    if len(by_op) > top:
        lines.append(f"  ... {len(by_op) - top} more ops")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="write the JSON list of failures here")
    ap.add_argument("-k", "--filter", help="regex on case names")
    ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per case")
    ap.add_argument("--top", type=int, default=80, help="ops listed in the breakdown")
    args = ap.parse_args(argv)
    t0 = time.time()
    cases = load_cases(args.filter)
    failures = run_all(cases, args.jobs, args.timeout, progress=True)
    print(summarize(len(cases), failures, args.top))
    print(f"({len(cases)} cases in {time.time() - t0:.0f} s)")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(failures, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
