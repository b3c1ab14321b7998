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


def _client(url, bodies, concurrency, barrier, queue, idx):
    barrier.wait()
    t0 = time.time()
    res, _ = loadtest.send_all(url, bodies, concurrency)
    queue.put((idx, t0, time.time(), [r if isinstance(r, loadtest.Result) else repr(r) for r in res]))


def run_clients(url: str, bodies: list, concurrency: int, procs: int):
    """POST every body once from `procs` processes (round-robin split); (results in order, wall s)."""
    if procs <= 1:
        return loadtest.send_all(url, bodies, concurrency)
    ctx = mp.get_context("spawn")  # the parent runs Ray / Triton threads: never fork it
    barrier, queue = ctx.Barrier(procs), ctx.Queue()
    parts = [bodies[i::procs] for i in range(procs)]
    ps = [ctx.Process(target=_client, args=(url, parts[i], max(1, concurrency // procs), barrier, queue, i))
          for i in range(procs)]
    for p in ps:
        p.start()
    got = [queue.get() for _ in ps]
    for p in ps:
        p.join()
    start, end = min(g[1] for g in got), max(g[2] for g in got)
    results = [None] * len(bodies)
    for idx, _, _, res in got:
        results[idx::procs] = res
    return results, end - start


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
        for f in feeds[:4]:  # warm-up: each replica compiles its first shapes
            handle.infer.remote(f).result()
        if args.ray_client == "handle":
            answers, results, wall = _handle_load(handle, feeds, which, args.concurrency)
        else:
            bodies = [loadtest.npy_body(f) for f in feeds]
            results, wall = run_clients(f"http://127.0.0.1:{port}/", [(bodies[p], {}) for p in which],
                                        args.concurrency, args.clients)
            answers = [_answer(loadtest.serve_answer, r) for r in results]
        server = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read())
    finally:
        serve.shutdown()
        ray.shutdown()
    return answers, results, wall, server


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
    from pytriton.triton import Triton, TritonConfig

    from tensorforge.serve import export_triton
    repo = os.path.join(tempfile.mkdtemp(prefix="tf-bench-triton-"), "repo")
    export_triton(path, repo, model_name="bench", max_batch=spec.max_batch, max_wait_ms=wait_ms,
                  instances=getattr(args, "instances", 1))
    port, mport = free_port(), free_port()
    cfg = TritonConfig(model_repository=repo, http_address="127.0.0.1", http_port=port,
                       grpc_address="127.0.0.1", grpc_port=free_port(), metrics_port=mport)
    outs = [s.name for s in spec.outputs]
    url = f"http://127.0.0.1:{port}/v2/models/bench/infer"
    with Triton(config=cfg) as server:
        server.run()
        bodies = [loadtest.triton_body(f, outs) for f in feeds]
        loadtest.send_all(url, bodies[:4], 4)  # warm-up
        results, wall = run_clients(url, [bodies[p] for p in which], args.concurrency, args.clients)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics").read().decode()
    answers = [_answer(loadtest.triton_answer, r) for r in results]
    stats = {}
    for line in metrics.splitlines():
        for key in ("nv_inference_count", "nv_inference_exec_count", "nv_inference_request_success"):
            if line.startswith(key + "{") and 'model="bench"' in line:
                stats[key] = float(line.rsplit(" ", 1)[1])
    if stats.get("nv_inference_exec_count"):
        stats["mean_batch_rows"] = round(stats["nv_inference_count"] / stats["nv_inference_exec_count"], 2)
    return answers, results, wall, stats
