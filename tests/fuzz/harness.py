"""Run fuzz cases in one worker process per batch (per-case timeout) and classify every outcome.

A case is plain data (see Case); the worker runs it in-process with stdout/stderr captured. Outcomes:
clean (one-line error or success), traceback (an exception escaped or a traceback was printed),
internal error ("Internal error" printed), hang (per-case timeout), crash (the worker died),
silent wrong (accepted an input that must be refused), data lost (a protected file changed).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import multiprocessing as mp
import os
import time
import traceback

OUTCOMES = ("clean", "traceback", "internal error", "hang", "crash", "silent wrong", "data lost")
MEM_LIMIT = 6 << 30  # address-space headroom over the worker's start size: a runaway load fails, not the box


@dataclasses.dataclass
class Case:
    """One fuzz input: which entry point, its argv, and what must hold afterwards."""
    family: str  # engine | onnx | cli
    kind: str  # mutation kind
    target: str  # forgeexec | inspect | tensorforge (any subcommand) | api_load | api_build
    argv: list
    must_fail: bool = False  # a run that succeeds is "silent wrong"
    protected: list = dataclasses.field(default_factory=list)  # files that must not change
    keep_on_failure: list = dataclasses.field(default_factory=list)  # unchanged when rc != 0
    cwd: str | None = None


def _digest(path: str):
    """sha256 of a regular file, 'missing', or a tag for other file kinds (never reads a FIFO)."""
    if os.path.islink(path):
        return "link:" + os.readlink(path)
    if not os.path.exists(path):
        return "missing"
    if not os.path.isfile(path):
        return "special"
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _run_target(case: Case):
    """(exit code, escaped exception or None) of one case, run in this process."""
    if case.target == "forgeexec":
        from tensorforge.cli.forgeexec.main import main
        return main(list(case.argv)), None
    if case.target in ("inspect", "tensorforge"):
        from tensorforge.cli.main import main
        return main((["inspect"] if case.target == "inspect" else []) + list(case.argv)), None
    if case.target in ("api_load", "api_build"):
        import tensorforge
        from tensorforge.errors import TensorforgeError
        try:
            if case.target == "api_load":
                eng = tensorforge.Engine.load(case.argv[0], device="cpu")
            else:
                eng = tensorforge.Builder(tensorforge.BuilderConfig(opt_level=0, device="cpu")).build(case.argv[0])
            eng.create_execution_context().infer({t.name: _zeros(t) for t in eng.inputs})
            return 0, None
        except TensorforgeError as e:
            print(f"error: {e}", file=__import__("sys").stderr)
            return 1, None
    raise ValueError(case.target)


def _zeros(t):
    import torch

    from tensorforge import dtypes
    shape = tuple(1 if d < 0 else d for d in t.shape)
    return torch.zeros(shape, dtype=dtypes.to_torch(t.dtype))


def run_one(case: Case) -> tuple[int | None, str, str]:
    """Run one case in this process: (exit code, captured output, escaped traceback or '')."""
    import logging
    import sys
    logging.getLogger().handlers.clear()
    buf = io.StringIO()
    old = os.getcwd()
    escaped = ""
    rc = None
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        try:
            if case.cwd:
                os.chdir(case.cwd)
            rc, _ = _run_target(case)
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 2
        except BaseException:  # noqa: BLE001 - the point is to see what escapes
            escaped = traceback.format_exc()
        finally:
            os.chdir(old)
    sys.stdout.flush()
    return rc, buf.getvalue(), escaped


def _worker(conn) -> None:
    """Worker loop: receive cases, send back results; limited address space."""
    import resource
    import warnings
    warnings.filterwarnings("ignore")
    with open("/proc/self/status") as f:
        vm = next(int(x.split()[1]) * 1024 for x in f if x.startswith("VmSize"))
    import tensorforge  # noqa: F401 - import before limiting so the limit is headroom over torch
    import tensorforge.cli.forgeexec.main  # noqa: F401
    import tensorforge.cli.main  # noqa: F401
    with open("/proc/self/status") as f:
        vm = next(int(x.split()[1]) * 1024 for x in f if x.startswith("VmSize"))
    resource.setrlimit(resource.RLIMIT_AS, (vm + MEM_LIMIT, vm + MEM_LIMIT))
    conn.send("ready")
    while True:
        case = conn.recv()
        if case is None:
            return
        conn.send(run_one(case))


def classify(case: Case, rc, out: str, escaped: str, before: dict) -> str:
    """Outcome of one finished case."""
    for p in case.protected:
        if _digest(p) != before[p]:
            return "data lost"
    if rc not in (0, None) and "Engine built in" not in out:  # a failed build touches no output
        for p in case.keep_on_failure:
            if _digest(p) != before[p]:
                return "data lost"
    if escaped or "Traceback (most recent call last)" in out:
        return "traceback"
    if "Internal error" in out:
        return "internal error"
    if rc == 0 and case.must_fail:
        return "silent wrong"
    return "clean"


class Batch:
    """One worker process that runs cases one after another; restarted after a hang or a crash."""

    def __init__(self, timeout: float):
        self.timeout = timeout
        self.ctx = mp.get_context("spawn")
        self.proc = None

    def _start(self):
        self.conn, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=_worker, args=(child,), daemon=True)
        self.proc.start()
        if not self.conn.poll(120) or self.conn.recv() != "ready":
            raise RuntimeError("fuzz worker did not start")

    def _kill(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.join()
            self.proc = None

    def run(self, case: Case):
        """(outcome, detail) of one case."""
        if self.proc is None:
            self._start()
        before = {p: _digest(p) for p in case.protected + case.keep_on_failure}
        self.conn.send(case)
        t0 = time.time()
        try:
            ready = self.conn.poll(self.timeout)
            res = self.conn.recv() if ready else None
        except (EOFError, ConnectionError):
            self._kill()
            return "crash", f"worker died (exit {self.proc.exitcode if self.proc else '?'})"
        if res is None:
            self._kill()
            return "hang", f"no result after {time.time() - t0:.0f} s"
        rc, out, escaped = res
        kind = classify(case, rc, out, escaped, before)
        detail = (escaped or out).strip().splitlines()
        return kind, (detail[-1] if detail else f"rc={rc}")[:300]

    def close(self):
        if self.proc is not None:
            try:
                self.conn.send(None)
                self.proc.join(5)
            finally:
                self._kill()


def run_cases(cases, timeout: float = 20.0, deadline: float | None = None, log=None, keep_dir=None):
    """Run cases (an iterable) in one batch; returns [(case, outcome, detail)]. keep_dir: where the
    files of every non-clean case are copied (mutated files are reused by later rounds)."""
    results = []
    batch = Batch(timeout)
    try:
        for case in cases:
            if deadline is not None and time.time() > deadline:
                break
            kind, detail = batch.run(case)
            results.append((case, kind, detail))
            if keep_dir is not None and kind != "clean":
                import shutil
                for p in case.protected:
                    if os.path.isfile(p):
                        shutil.copy(p, os.path.join(keep_dir, f"{len(results)}_{os.path.basename(p)}"))
            if log is not None and kind != "clean":
                log(f"{case.family}/{case.kind}/{case.target}: {kind}: {detail} | argv: {' '.join(case.argv)}")
    finally:
        batch.close()
    return results


def table(results) -> str:
    """The summary table: one row per family and a total row; columns = OUTCOMES."""
    fams = sorted({c.family for c, _, _ in results})
    rows = [(f, [r for r in results if r[0].family == f]) for f in fams] + [("total", results)]
    head = f"| {'family':<8} | {'tried':>5} | " + " | ".join(f"{o:>6}" for o in OUTCOMES) + " |"
    lines = [head, "|" + "---|" * (2 + len(OUTCOMES))]
    for name, rs in rows:
        counts = [sum(1 for _, k, _ in rs if k == o) for o in OUTCOMES]
        lines.append(f"| {name:<8} | {len(rs):>5} | " + " | ".join(f"{c:>6}" for c in counts) + " |")
    return "\n".join(lines)
