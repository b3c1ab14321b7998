"""GPU suite setup: one Triton compile cache for the whole run, a default per-test timeout, the
`fast` tier marker, and a per-file time summary.

Cache: TRITON_CACHE_DIR if set (TF_TRITON_CACHE_DIR sets it), else a new directory for this run,
put in the environment before any test imports triton, so identical kernels compile once across
files and across pytest-xdist workers (they are started later and inherit the environment; a
worker that did not inherit it derives the directory from xdist's test-run id)."""
import os
import tempfile
import time

import pytest
import torch

from . import sweep

DEFAULT_TIMEOUT_S = int(os.environ.get("TF_GPU_TEST_TIMEOUT", "300"))


def _cache_dir():
    """(the run's Triton cache dir, whether this process created it)."""
    given = os.environ.get("TF_TRITON_CACHE_DIR") or os.environ.get("TRITON_CACHE_DIR")
    if given:
        return given, False
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run:
        return os.path.join(tempfile.gettempdir(), f"tensorforge-triton-{run}"), False
    return tempfile.mkdtemp(prefix="tensorforge-triton-"), True


STARTED = time.time()
CACHE_DIR, _CREATED = _cache_dir() if torch.cuda.is_available() else (None, False)  # CPU: tests skip
if CACHE_DIR:
    os.makedirs(CACHE_DIR, exist_ok=True)
    os.environ["TRITON_CACHE_DIR"] = CACHE_DIR  # triton reads it at every lookup (knobs.cache.dir)
    if os.environ.get("PYTEST_XDIST_WORKER"):  # 8 workers on 16 cores: a build's parallel compile gets 2 each
        os.environ.setdefault("TF_COMPILE_THREADS", "2")


def pytest_report_header(config):
    return f"triton cache: {CACHE_DIR}; full config sweeps: {sweep.FULL} (TF_GPU_FULL_SWEEP=1)"


def _matches(mark, item) -> bool:
    """A bare @pytest.mark.fast marks every parametrization; fast(name=value, ...) the ones whose
    parameters have those values."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    unknown = set(mark.kwargs) - set(params)
    if unknown:
        raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.fast names unknown parameters {sorted(unknown)}")
    return all(params[k] == v for k, v in mark.kwargs.items())


def _gpu(item) -> bool:
    return "tests/gpu/" in str(item.fspath).replace(os.sep, "/")


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config, items):
    timeout = config.pluginmanager.hasplugin("timeout") and not (
        getattr(config.option, "timeout", None) or os.environ.get("PYTEST_TIMEOUT") or config.getini("timeout"))
    for item in items:
        if not _gpu(item):
            continue
        fast = [m for m in item.iter_markers("fast")]
        if fast and not any(_matches(m, item) for m in fast):
            item.own_markers[:] = [m for m in item.own_markers if m.name != "fast"]
        if timeout and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DEFAULT_TIMEOUT_S))


@pytest.fixture
def triton_sweep(monkeypatch):
    """kernels.candidates offering only sweep.tactics()'s subset of each Triton tactic's configs:
    for tests that check every offered tactic of a layer, whose subject is the aten / cuBLASLt
    tactics (the Triton tuning spaces are swept in test_triton_*)."""
    from tensorforge import kernels
    monkeypatch.setattr(kernels, "candidates", sweep.cut_candidates(kernels.candidates))


def _kernels_in_cache() -> int:
    """Compiled kernels in the cache dir (entries holding a cubin)."""
    n = 0
    for _, _, files in os.walk(CACHE_DIR):
        n += any(f.endswith(".cubin") for f in files)
    return n


def pytest_terminal_summary(terminalreporter):
    """Seconds per GPU test file (setup + call + teardown, summed over workers) and the number of
    kernels the run compiled into the shared cache."""
    per_file, ran = {}, 0
    for reports in terminalreporter.stats.values():
        for r in reports:
            nodeid, when = getattr(r, "nodeid", ""), getattr(r, "when", None)
            if not nodeid.startswith("tests/gpu/") or when is None:
                continue
            path = nodeid.split("::", 1)[0]
            per_file[path] = per_file.get(path, 0.0) + getattr(r, "duration", 0.0)
            ran += when == "call"
    if not ran or not CACHE_DIR:
        return
    tr = terminalreporter
    tr.write_sep("=", "GPU suite: seconds per file")
    for path, s in sorted(per_file.items(), key=lambda kv: -kv[1]):
        tr.write_line(f"{s:8.1f}  {path}")
    tr.write_line(f"{time.time() - STARTED:8.1f}  wall (since conftest import); "
                  f"{_kernels_in_cache()} kernels in the triton cache {CACHE_DIR}")


def pytest_unconfigure(config):
    """Remove the cache this process created (TF_KEEP_TRITON_CACHE=1 keeps it)."""
    if _CREATED and not os.environ.get("TF_KEEP_TRITON_CACHE") and not hasattr(config, "workerinput"):
        import shutil
        shutil.rmtree(CACHE_DIR, ignore_errors=True)
