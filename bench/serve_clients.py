"""bench/serve.py's servers and clients: start Ray Serve or Triton on loopback, drive them from one or
several client processes, collect every answer."""
from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import socket
import tempfile
import time
import urllib.request

from tensorforge.serve import loadtest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def host_cpu() -> tuple:
    """(busy, total, {process name: CPU s}) of the whole host so far, from /proc ((0, 0, {}) where there is none).
    Process names are /proc/PID/comm (Triton's Python-backend stubs: triton_python_b…; Ray's: ray::…)."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0, {}
    tick = os.sysconf("SC_CLK_TCK")
    idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
    procs: dict = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                st = f.read()
        except OSError:
            continue
        name, rest = st[st.index("(") + 1:st.rindex(")")], st[st.rindex(")") + 2:].split()
        if name.startswith("kworker"):  # its name carries the current work item: kworker/u8:1-kvfree_rcu...
            name = "kworker"
        # (pid, start time): one process even when its name changes; utime + stime
        procs[(pid, rest[19])] = (name, (int(rest[11]) + int(rest[12])) / tick)
    return (sum(v) - idle) / tick, sum(v) / tick, procs


def cpu_use(before: tuple, after: tuple, wall: float, requests: int) -> dict:
    """The host's busy cores over a load phase, CPU milliseconds per request (servers, clients and all: with C
    cores, no server on this host can answer more than C / that cost requests per second), and that cost by
    process name (the 6 largest)."""
    busy = after[0] - before[0]
    if wall <= 0 or after[1] <= before[1]:
        return {}
    by_name: dict = {}
    for key, (name, t) in after[2].items():
        d = t - before[2].get(key, (name, 0.0))[1]
        if d > 0:
            by_name[name] = by_name.get(name, 0.0) + d
    top = sorted(by_name.items(), key=lambda kv: -kv[1])[:6]
    return {"busy_cores": round(busy / wall, 2), "cores": os.cpu_count(),
            "cpu_ms_per_request": round(busy * 1e3 / max(1, requests), 3),
            "cpu_ms_per_request_by_process": {n: round(t * 1e3 / max(1, requests), 3) for n, t in top}}


def _client(url, bodies, which, concurrency, barrier, queue, idx):
    bodies = [bodies[p] for p in which]
    barrier.wait()
    t0 = time.time()
    res, _ = loadtest.send_all(url, bodies, concurrency)
    queue.put((idx, t0, time.time(), [r if isinstance(r, loadtest.Result) else repr(r) for r in res]))


def run_clients(url: str, bodies: list, which: list, concurrency: int, procs: int):
    """POST bodies[p] for each p of `which` from `procs` processes (round-robin split); (results in order,
    wall s, the host's CPU use over the load: cpu_use). Each process gets the distinct bodies and its
    indices (session 12: the expanded list, 8000 x 602 KB, took longer to hand to 8 spawned clients than the
    load itself)."""
    if procs <= 1:
        c0 = host_cpu()
        results, wall = loadtest.send_all(url, [bodies[p] for p in which], concurrency)
        return results, wall, cpu_use(c0, host_cpu(), wall, len(which))
    ctx = mp.get_context("spawn")  # the parent runs Ray / Triton threads: never fork it
    barrier, queue = ctx.Barrier(procs + 1), ctx.Queue()
    ps = [ctx.Process(target=_client, args=(url, bodies, which[i::procs], max(1, concurrency // procs), barrier,
                                            queue, i))
          for i in range(procs)]
    for p in ps:
        p.start()
    barrier.wait()  # every client is up: the load starts now
    c0 = host_cpu()
    got = [queue.get() for _ in ps]
    c1 = host_cpu()
    for p in ps:
        p.join()
    start, end = min(g[1] for g in got), max(g[2] for g in got)
    results = [None] * len(which)
    for idx, _, _, res in got:
        results[idx::procs] = res
    return results, end - start, cpu_use(c0, c1, end - start, len(which))


def ray_run(path, feeds, which, args, wait_ms, spec):
    """Ray Serve: HTTP (.npy bodies) or Python-handle clients; (answers, results, wall, server metrics)."""
    import json

    import ray
    from ray import serve

    from tensorforge.serve import deployment
    ray.init(include_dashboard=False, log_to_driver=False)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    handle = serve.run(deployment(path, max_batch=spec.max_batch, max_wait_ms=wait_ms, name="bench",
                                  gpus_per_replica=getattr(args, "gpus_per_replica", None)),
                       name="bench", route_prefix="/")
    try:
        if args.ray_client == "handle":  # warm-up: each replica compiles its first shapes
            for f in feeds[:4]:
                handle.infer.remote(f).result()
        else:  # (over HTTP: with RAY_SERVE_THROUGHPUT_OPTIMIZED=1 a handle cannot be used from this sync code)
            loadtest.send_all(f"http://127.0.0.1:{port}/", [(loadtest.npy_body(f), {}) for f in feeds[:4]], 4)
        if args.ray_client == "handle":
            c0 = host_cpu()
            answers, results, wall = _handle_load(handle, feeds, which, args.concurrency)
            cpu = cpu_use(c0, host_cpu(), wall, len(which))
        else:
            bodies = [loadtest.npy_body(f) for f in feeds]
            results, wall, cpu = run_clients(f"http://127.0.0.1:{port}/", [(b, {}) for b in bodies], which,
                                             args.concurrency, args.clients)
            answers = [_answer(loadtest.serve_answer, r) for r in results]
        server = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read())
        server.update(cpu)
    finally:
        _bounded(lambda: (serve.shutdown(), ray.shutdown()), 25, "Ray Serve's shutdown")
    return answers, results, wall, server


def _bounded(fn, seconds: float, what: str) -> None:
    """fn() in a daemon thread, waited for at most `seconds` (session 13 on the H200: Serve's controller did not
    shut down, Ray's shutdown then hung, and the step's time ran out before the results it had were printed)."""
    import threading
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        print(f"warning: {what} did not finish within {seconds:g} s; going on without it", flush=True)


def _handle_load(handle, feeds, which, concurrency):
    async def go():
        sem = asyncio.Semaphore(concurrency)

        async def one(p):
            async with sem:
                t0 = time.perf_counter()
                out = await handle.infer.remote(feeds[p])
                return out, loadtest.Result(200, b"", {}, (time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        res = await asyncio.gather(*(one(p) for p in which), return_exceptions=True)
        return res, time.perf_counter() - t0
    res, wall = asyncio.run(go())
    answers = [r[0] if isinstance(r, tuple) else None for r in res]
    return answers, [r[1] if isinstance(r, tuple) else r for r in res], wall


def _answer(decode, r):
    try:
        return decode(r) if isinstance(r, loadtest.Result) and r.status == 200 else None
    except Exception:  # noqa: BLE001 - a garbled answer counts as wrong
        return None


def triton_run(path, feeds, which, args, wait_ms, spec):
    """PyTriton's bundled tritonserver on an exported repository; KServe v2 binary requests."""
    from pytriton.triton import TRITON_ACCESS_HEADER, Triton, TritonConfig, TritonSecurityConfig

    from tensorforge.serve import export_triton
    repo = os.path.join(tempfile.mkdtemp(prefix="tf-bench-triton-"), "repo")
    export_triton(path, repo, model_name="bench", max_batch=spec.max_batch, max_wait_ms=wait_ms,
                  instances=getattr(args, "instances", 1))
    port, mport = free_port(), free_port()
    cfg = TritonConfig(model_repository=repo, http_address="127.0.0.1", http_port=port,
                       grpc_address="127.0.0.1", grpc_port=free_port(), metrics_port=mport)
    outs = [s.name for s in spec.outputs]
    url = f"http://127.0.0.1:{port}/v2/models/bench/infer"
    shm = None
    # PyTriton guards the shared-memory API with a token it makes up (its default); the bench passes it
    sec = TritonSecurityConfig()
    token = {TRITON_ACCESS_HEADER: sec.access_token} if sec.access_token else {}
    with Triton(config=cfg, security_config=sec) as server:
        server.run()
        if getattr(args, "triton_shm", False):  # inputs in one system shared-memory region, read in place
            shm = loadtest.TritonShm(f"http://127.0.0.1:{port}", feeds, outs, token, region="tf_bench_inputs")
            bodies = shm.bodies
        else:
            bodies = [loadtest.triton_body(f, outs) for f in feeds]
        try:
            loadtest.send_all(url, bodies[:4], 4)  # warm-up
            results, wall, cpu = run_clients(url, bodies, which, args.concurrency, args.clients)
        finally:
            if shm is not None:
                shm.close()
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics").read().decode()
    answers = [_answer(loadtest.triton_answer, r) for r in results]
    stats = dict(cpu)
    for line in metrics.splitlines():
        for key in ("nv_inference_count", "nv_inference_exec_count", "nv_inference_request_success"):
            if line.startswith(key + "{") and 'model="bench"' in line:
                stats[key] = float(line.rsplit(" ", 1)[1])
    if stats.get("nv_inference_exec_count"):
        stats["mean_batch_rows"] = round(stats["nv_inference_count"] / stats["nv_inference_exec_count"], 2)
    return answers, results, wall, stats
