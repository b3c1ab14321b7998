"""Why served answers differ from the in-process reference (issue 18, session 11): the same payloads run
alone in this process (twice, and on a second context), in a fresh process, in a Ray task, through the
Ray Serve deployment one at a time (handle and HTTP), and one request through Triton (status, headers
and the head of the body when it does not decode). Prints each path's largest difference from this
process's first run, as a fraction of the largest output, and each process's math flags.

  python3 bench/serve_diag.py --engine r50.engine [--paths local,proc,ray,serve,triton]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import traceback

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def flags() -> dict:
    import torch
    env = {k: v for k, v in os.environ.items() if k.startswith(("TENSORFORGE", "CUDA_", "TRITON", "PYTORCH", "NVIDIA"))}
    return {"pid": os.getpid(), "tf32_mm": torch.backends.cuda.matmul.allow_tf32,
            "tf32_cudnn": torch.backends.cudnn.allow_tf32, "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "fp32_precision": torch.get_float32_matmul_precision(), "numpy": np.__version__,
            "torch": torch.__version__, "env": env}


def run_alone(path, feeds, graph=None):
    """Each feed alone through a Runner (twice) and through the context's own infer; (runs, flags)."""
    from tensorforge.serve.runner import Runner
    r = Runner(path, cuda_graph=graph, warmup="none")
    first = [r.infer(f) for f in feeds]
    again = [r.infer(f) for f in feeds]
    plain = [{n: t.detach().cpu().numpy() for n, t in r.context.infer(f).items()} for f in feeds]
    return {"runner": first, "runner again": again, "context.infer": plain}, flags()


def diff(a: list, b: list) -> float:
    worst = 0.0
    for x, y in zip(a, b):
        for n, r in y.items():
            if x is None or n not in x or x[n].shape != r.shape:
                return float("inf")
            worst = max(worst, float(np.abs(x[n].astype(np.float64) - r).max() / max(np.abs(r).max(), 1e-30)))
    return worst


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", required=True)
    ap.add_argument("--paths", default="local,proc,ray,serve,triton")
    ap.add_argument("--n", type=int, default=8)
    a = ap.parse_args(argv)
    from serve import payloads  # bench/serve.py's payloads (seed 0, batch 1)
    feeds = payloads(a.engine, a.n, (1,))
    paths = a.paths.split(",")
    runs, fl = run_alone(a.engine, feeds)
    ref = runs["runner"]
    print("this process:", fl, flush=True)
    for k, v in runs.items():
        print(f"  {k}: {diff(v, ref):.3g}", flush=True)

    def report(name, fn):
        try:
            got = fn()
            if isinstance(got, tuple):
                got, f = got
                print(f"{name} flags: {f}", flush=True)
            for k, v in (got.items() if isinstance(got, dict) else [("answers", got)]):
                print(f"{name} / {k}: {diff(v, ref):.3g} of the largest output", flush=True)
        except Exception:  # noqa: BLE001 - the diagnosis is the point
            print(f"{name}: failed\n{traceback.format_exc(limit=4)}", flush=True)
    if "local" in paths:
        report("second context, no graph", lambda: run_alone(a.engine, feeds, graph=False))
    if "proc" in paths:
        with mp.get_context("spawn").Pool(1) as pool:
            report("fresh process", lambda: pool.apply(run_alone, (a.engine, feeds)))
    if "ray" in paths or "serve" in paths:
        import ray
        ray.init(include_dashboard=False, log_to_driver=False)
        if "ray" in paths:
            report("ray task (1 GPU)", lambda: ray.get(ray.remote(num_gpus=1)(run_alone).remote(a.engine, feeds)))
        if "serve" in paths:
            report_serve(a.engine, feeds, report)
        ray.shutdown()
    if "triton" in paths:
        report_triton(a.engine, feeds, report)
    return 0


def report_serve(path, feeds, report):
    import urllib.request

    from ray import serve

    from serve_clients import free_port
    from tensorforge.serve import codec, deployment, loadtest
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    handle = serve.run(deployment(path, max_batch=128, max_wait_ms=2.0, name="diag"), name="diag", route_prefix="/")
    try:
        report("ray serve handle, one at a time", lambda: [handle.infer.remote(f).result() for f in feeds])

        def http():
            out = []
            for f in feeds:
                req = urllib.request.Request(f"http://127.0.0.1:{port}/", data=loadtest.npy_body(f), method="POST")
                out.append(codec.decode_answer(urllib.request.urlopen(req).read()))
            return out
        report("ray serve http, one at a time", http)
    finally:
        serve.shutdown()


def report_triton(path, feeds, report):
    """Three exports of the engine in one repository: as written; with the outputs copied into arrays of their
    own before pb_utils.Tensor; with KIND_CPU instances (the engine still on its GPU). Each gets the feeds
    with aiohttp's default Accept-Encoding (gzip) and with identity."""
    from pytriton.triton import Triton, TritonConfig

    from serve_clients import free_port
    from tensorforge.serve import export_triton, loadtest
    from tensorforge.serve.spec import engine_view
    spec, _ = engine_view(path, 128)
    repo = os.path.join(tempfile.mkdtemp(prefix="tf-diag-triton-"), "repo")
    for name in ("diag", "diag_copy", "diag_cpu"):
        d = export_triton(path, repo, model_name=name, max_batch=128, max_wait_ms=2.0)
        if name == "diag_copy":
            mp_ = os.path.join(d, "1", "model.py")
            src = open(mp_).read().replace("pb_utils.Tensor(n, r[n])", "pb_utils.Tensor(n, __import__('numpy').array(r[n], copy=True))")
            open(mp_, "w").write(src)
        if name == "diag_cpu":
            cp = os.path.join(d, "config.pbtxt")
            open(cp, "w").write(open(cp).read().replace("KIND_GPU", "KIND_CPU"))
    port = free_port()
    cfg = TritonConfig(model_repository=repo, http_address="127.0.0.1", http_port=port, grpc_address="127.0.0.1",
                       grpc_port=free_port(), metrics_port=free_port())
    outs = [s.name for s in spec.outputs]
    with Triton(config=cfg) as server:
        server.run()
        for name in ("diag", "diag_copy", "diag_cpu"):
            url = f"http://127.0.0.1:{port}/v2/models/{name}/infer"
            for enc in ("gzip, deflate", "identity"):
                bodies = []
                for f in feeds:
                    body, head = loadtest.triton_body(f, outs)
                    bodies.append((body, {**head, "Accept-Encoding": enc}))
                res, _ = loadtest.send_all(url, bodies, 1)
                r = res[0]
                print(f"triton {name} accept {enc}: {type(r).__name__} status {getattr(r, 'status', None)} headers "
                      f"{getattr(r, 'headers', None)} body[:200] {getattr(r, 'body', b'')[:200]!r}", flush=True)
                report(f"triton {name} accept {enc}", lambda res=res: [loadtest.triton_answer(x) for x in res])


if __name__ == "__main__":
    sys.exit(main())
