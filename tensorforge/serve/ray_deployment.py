"""Build and run the Ray Serve application for an engine (replicas, batching, HTTP, shutdown)."""
from __future__ import annotations

import logging
import os

from ..errors import TensorforgeError
from .spec import DEFAULT_MAX_BATCH, engine_view

log = logging.getLogger("tensorforge.serve")

DEFAULT_WAIT_MS = 5.0
MAX_ONGOING = 1024
GRACEFUL_TIMEOUT_S = 30.0  # a stopping replica finishes its in-flight requests for up to this long


def import_ray():
    """Ray Serve, or a one-line error saying how to install it."""
    try:
        import ray
        from ray import serve
    except ImportError:
        raise TensorforgeError("Ray Serve is not installed: pip install 'tensorforge[serve]' "
                               "(or pip install 'ray[serve]')") from None
    return ray, serve


def replica_plan(device: str, replicas: int | None, gpus_per_replica: float | None, gpus_here: float,
                 cpus_here: float) -> tuple[int, dict]:
    """(num_replicas, ray_actor_options): one replica per GPU (or per fraction); on the CPU 1 or N."""
    if device == "cuda":
        frac = gpus_per_replica or 1.0
        if gpus_here <= 0:
            raise TensorforgeError("the engine was built for a GPU but Ray sees no GPU")
        n = replicas or max(1, int(gpus_here / frac + 1e-9))
        return n, {"num_gpus": frac, "num_cpus": 1}
    n = replicas or 1
    return n, {"num_cpus": min(1.0, max(cpus_here, 1.0) / n)}  # never more CPUs than the machine has


def deployment(engine_path: str, max_batch: int | None = None, max_wait_ms: float | None = None,
               replicas: int | None = None, gpus_per_replica: float | None = None, name: str = "tensorforge",
               max_ongoing: int | None = None):
    """A bound Ray Serve application serving `engine_path`: pass it to `serve.run`.

    max_batch: rows per engine call (default: the profile's max batch); max_wait_ms: how long a
    batch waits to fill (default 5 ms); replicas: default one per GPU, one on the CPU; max_ongoing:
    requests a replica accepts at once (default max(8 x max batch, 1024))."""
    ray, serve = import_ray()
    from .ray_app import EngineServer
    engine_path = os.path.abspath(engine_path)
    spec, device = engine_view(engine_path, max_batch)
    rows, batched = spec.max_batch, spec.batched
    if not ray.is_initialized():
        ray.init(log_to_driver=False, include_dashboard=False)
    res = ray.cluster_resources()
    n, actor_opts = replica_plan(device, replicas, gpus_per_replica, res.get("GPU", 0), res.get("CPU", 1))
    # Ray's router backs off (sleeps) while every replica is at max_ongoing_requests, which starved
    # the batcher (9 req/s on the CPU test at 32); let requests queue in the replica's batcher instead
    ongoing = max_ongoing or max(8 * rows if batched else 8, MAX_ONGOING)
    wait = DEFAULT_WAIT_MS if max_wait_ms is None else float(max_wait_ms)
    log.info("serving %s: %d replica(s) %s, max batch %d rows, max wait %.3g ms", engine_path, n,
             actor_opts, rows, wait)
    dep = serve.deployment(EngineServer, name=name, num_replicas=n, ray_actor_options=actor_opts,
                           max_ongoing_requests=ongoing, max_queued_requests=-1,
                           graceful_shutdown_timeout_s=GRACEFUL_TIMEOUT_S, graceful_shutdown_wait_loop_s=0.5)
    return dep.bind(engine_path, rows if batched else None, wait)


__all__ = ["deployment", "import_ray", "DEFAULT_MAX_BATCH", "DEFAULT_WAIT_MS"]
