"""Inference setup: profile choice, inference shapes, contexts and buffers per stream, timed runs."""
from __future__ import annotations

import dataclasses

from ...progress import Progress
from . import api
from .bindings import StreamBuffers
from .inputs import make_inputs
from .memory import context_line
from .log import Logger
from .loop import Iteration, LoopConfig, run_inference
from .shapes import check_names, lookup


def choose_profile(engine, opts, log: Logger) -> int:
    """--useProfile (default 0, with a warning when the engine has several profiles)."""
    n = api.num_profiles(engine)
    if opts.useProfile is None:
        if n > 1:
            log.warn(f"The engine has {n} optimization profiles but --useProfile is not specified; profile 0 is "
                     "used.")
        return 0
    if opts.useProfile >= n:
        raise api.error(f"--useProfile={opts.useProfile} is out of range: the engine has {n} optimization "
                        "profile(s)")
    return opts.useProfile


def inference_shapes(engine, opts, profile: int) -> dict[str, tuple]:
    """Shape of each input: --shapes, else the profile's opt for dynamic inputs, else the static shape.
    A shape-tensor input's shape is always its static engine shape (--shapes gives its values)."""
    try:
        check_names(opts.shapes, [t.name for t in api.io_tensors(engine)], "input")
    except Exception as e:  # UsageError: a --shapes name the engine does not have
        raise api.error(str(e)) from None
    out = {}
    for t in engine.inputs:
        s = None if api.is_shape_input(engine, t.name) else lookup(opts.shapes, t.name)
        if s is None:
            s = api.profile_shape(engine, profile, t.name)[1] if -1 in t.shape else t.shape
        out[t.name] = tuple(s)
    return out


def shape_input_values(engine, opts, profile: int) -> dict[str, tuple]:
    """Values of each shape-tensor input: --shapes, else the profile's opt values."""
    out = {}
    for t in engine.inputs:
        if api.is_shape_input(engine, t.name):
            v = lookup(opts.shapes, t.name)
            out[t.name] = tuple(v) if v is not None else api.profile_values(engine, profile, t.name)[1]
    return out


def check_input_values(engine, data: dict, values: dict, profile: int) -> None:
    """Shape-tensor input values (given or loaded) must be positive and inside the profile."""
    vals = {n: tuple(int(x) for x in data[n].reshape(-1).tolist()) for n in values}
    api.check_shape_values(engine, profile, vals)


def loop_config(opts, skip_transfers: bool) -> LoopConfig:
    """LoopConfig from the inference flags."""
    return LoopConfig(iterations=opts.iterations, duration_s=opts.duration, warmup_ms=opts.warmUp,
                      idle_ms=opts.idleTime, sleep_ms=opts.sleepTime, skip_transfers=skip_transfers,
                      threads=opts.threads)


def wants_nvtx(engine, opts, log: Logger) -> bool:
    """NVTX ranges per layer: --profilingVerbosity=detailed, or an engine built with it (off by default)."""
    explicit = "--profilingVerbosity" in opts.given
    if (opts.profilingVerbosity if explicit else api.engine_verbosity(engine, opts.profilingVerbosity)) != "detailed":
        return False
    if not api.nvtx_available():
        log.warn("NVTX is not available here (no CUDA build of torch, no `nvtx` package): no per-layer ranges.")
        return False
    log.info("NVTX ranges per layer: on (profiling verbosity detailed; a CUDA graph replay shows none)")
    return True


class Session:
    """One context and one set of bindings per inference stream, sharing the same input data."""

    def __init__(self, engine, opts, backend, log: Logger):
        self.engine, self.opts, self.backend, self.log = engine, opts, backend, log
        self.profile = choose_profile(engine, opts, log)
        self.shapes = inference_shapes(engine, opts, self.profile)
        names = [t.name for t in engine.inputs]
        try:
            check_names(opts.load_inputs, names, "input")
        except Exception as e:  # UsageError: a --loadInputs name the engine does not have
            raise api.error(str(e)) from None
        files = {n: lookup(opts.load_inputs, n) for n in names if lookup(opts.load_inputs, n) is not None}
        values = shape_input_values(engine, opts, self.profile)
        data = make_inputs(engine.inputs, self.shapes, files, api.zoo_value_ranges(opts.onnx), values)
        check_input_values(engine, data, values, self.profile)
        self.skip_transfers = bool(opts.noDataTransfers or backend.host_timing)
        self.contexts, self.buffers = [], []
        self.nvtx = wants_nvtx(engine, opts, log)
        for _ in range(opts.infStreams):
            ctx = engine.create_execution_context(**({"nvtx": True} if self.nvtx else {}))
            if getattr(engine, "num_profiles", 0):
                ctx.set_optimization_profile(self.profile)
            self.contexts.append(ctx)
            if getattr(engine, "device_memory_size", None) is not None:
                log.info(context_line(engine))
            self.buffers.append(StreamBuffers(engine, ctx, backend, data, not self.skip_transfers))
        self.cfg = loop_config(opts, self.skip_transfers)

    def iterations(self, use_graph: bool) -> list[Iteration]:
        """Fresh Iteration objects (streams, events, optional CUDA graph) for one run."""
        depth = 1 if self.opts.exposeDMA else 2
        its = []
        for i, (ctx, buf) in enumerate(zip(self.contexts, self.buffers)):
            it = Iteration(i, ctx, buf, self.backend, depth, self.skip_transfers)
            if self.skip_transfers:
                buf.upload()
            if use_graph:
                it.capture_graph(self.log.warn, self.log.info)
            its.append(it)
        return its

    def run(self, use_graph: bool, label: str = "Benchmark"):
        """One full timed run (a progress line on a terminal); returns the sorted traces."""
        with Progress(label, 1.0) as bar:
            cfg = dataclasses.replace(self.cfg, progress=None if self.cfg.threads else bar.update)
            return run_inference(self.iterations(use_graph), self.backend, cfg)

    def outputs(self) -> dict:
        """Outputs of context 0 (copied to the host)."""
        return self.buffers[0].download()
