"""The forgeexec run after parsing: device, engine, inference, report, profile, layer info, exports."""
from __future__ import annotations

import contextlib
import os
import tempfile

from . import api, memory, monitor
from .backend import CpuBackend, CudaBackend
from .banner import device_lines
from .build import build_engine, load_engine, select_device, time_deserialize
from .exports import dump_output_lines, output_json, times_json, write_text
from .layerinfo import layer_info, oneline, to_json
from .log import Logger
from .options import notes
from .guards import check_limits, check_paths
from .profile import Profiler
from .report import performance_report, split_warmup
from .session import Session
from .shapes import fmt_dims

CPU_WARNING = ("CUDA is not available or the engine runs on the CPU: all timings below are CPU numbers (host clock, "
               "time.perf_counter), not GPU numbers; H2D and D2H latencies are reported as 0.")


def make_backend(engine, opts, log: Logger):
    """CUDA backend for CUDA engines, else the CPU backend (with warnings for what it ignores)."""
    if engine.device.type == "cuda":
        return CudaBackend(engine.device, spin=opts.useSpinWait)
    log.warn(CPU_WARNING)
    if opts.useCudaGraph:
        log.warn("--useCudaGraph is ignored on the CPU.")
    if opts.useSpinWait:
        log.warn("--useSpinWait is ignored on the CPU.")
    if not opts.noDataTransfers:
        log.warn("Pinned host memory and H2D/D2H copies are not used on the CPU.")
    return CpuBackend()


def emit_layer_info(engine, ctx, opts, log: Logger) -> None:
    """--dumpLayerInfo (one-line form) and --exportLayerInfo (JSON)."""
    if not (opts.dumpLayerInfo or opts.exportLayerInfo):
        return
    # an explicit flag wins (tensorforge engines always keep full layer details); else the engine's own setting
    explicit = "--profilingVerbosity" in opts.given
    info = layer_info(engine, ctx, opts.profilingVerbosity if explicit else
                      api.engine_verbosity(engine, opts.profilingVerbosity))
    if opts.dumpLayerInfo:
        log.info("Layer Information:")
        for line in oneline(info):
            log.info(line)
    if opts.exportLayerInfo:
        write_text(opts.exportLayerInfo, to_json(info))


def dump_profiles(engine, log: Logger) -> None:
    """--dumpOptimizationProfile: `Model input NAME (profile i): min=..., opt=..., max=...`."""
    for i in range(api.num_profiles(engine)):
        for t in engine.inputs:
            shape_input = api.is_shape_input(engine, t.name)
            mn, op, mx = (api.profile_values if shape_input else api.profile_shape)(engine, i, t.name)
            log.info(f"Model input {t.name} (profile {i}): min={fmt_dims(mn)}, opt={fmt_dims(op)}, "
                     f"max={fmt_dims(mx)}")


def _time_deserialize(engine, opts, log: Logger) -> None:
    """--timeDeserialize on the loaded, saved or a temporary engine file."""
    path = opts.loadEngine or opts.saveEngine
    if path:
        time_deserialize(path, log)
        return
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "timing.engine")
        api.save_engine(engine, path)
        time_deserialize(path, log)


def report(traces, session: Session, opts, log: Logger, profiler_in_run: bool) -> None:
    """Log the performance report and write --exportTimes."""
    for sev, line in performance_report(traces, opts.warmUp, opts.avgRuns, opts.percentiles, opts.infStreams,
                                        session.backend.host_timing, profiler_in_run):
        log.log(sev, line)
    if opts.exportTimes:
        write_text(opts.exportTimes, times_json(traces, split_warmup(traces, opts.warmUp)))


def throughput(traces, warmup_ms: float):
    """Queries per second of the timed part of a run (None when nothing was timed)."""
    w = split_warmup(traces, warmup_ms)
    wall = traces[-1].d2hEnd - traces[w].h2dStart if w < len(traces) else 0
    return (len(traces) - w) / wall * 1000.0 if wall > 0 else None


def emit_outputs(session: Session, opts, log: Logger) -> None:
    """--dumpOutput and --exportOutput from context 0."""
    if not (opts.dumpOutput or opts.exportOutput):
        return
    outs = session.outputs()
    if opts.dumpOutput:
        for line in dump_output_lines(outs):
            log.info(line)
    if opts.exportOutput:
        write_text(opts.exportOutput, output_json(outs))


def inference(engine, opts, backend, log: Logger) -> None:
    """Timed run, report, outputs, optional separate profile run, layer info and profile."""
    session = Session(engine, opts, backend, log)
    in_run = opts.profiler_enabled and not opts.separateProfileRun
    profiler = Profiler() if opts.profiler_enabled else None
    use_graph = opts.useCudaGraph and not backend.host_timing
    if in_run:
        api.set_profiler(session.contexts[0], profiler)
        if use_graph:
            log.warn("CUDA graph is not used while the profiler is attached: per-layer times need per-layer "
                     "launches. Add --separateProfileRun to time the graph and profile in a second run.")
            use_graph = False
    log.info("Starting inference")
    memory.start_run(engine.device)
    mon = monitor.start(opts, engine.device, log)
    try:
        traces = session.run(use_graph)
    finally:
        if mon is not None:  # stopped even when the run fails
            mon.stop()
    report(traces, session, opts, log, in_run)
    memory.log_lines(memory.run_lines(engine.device), log)
    monitor.finish(mon, throughput(traces, opts.warmUp), log)
    emit_outputs(session, opts, log)
    if opts.profiler_enabled and opts.separateProfileRun:
        api.set_profiler(session.contexts[0], profiler)
        if opts.useCudaGraph and not backend.host_timing:
            log.warn("The profiling run launches layers without the CUDA graph (per-layer times need per-layer "
                     "launches).")
        log.info("Starting the separate profiling run (profiler attached to inference stream 0)")
        session.run(False, "Profiling run")
    if profiler is not None:
        api.set_profiler(session.contexts[0], None)
    emit_layer_info(engine, session.contexts[0], opts, log)
    if profiler is not None and opts.dumpProfile:
        for line in profiler.table():
            log.info(line)
    if profiler is not None and opts.exportProfile:
        write_text(opts.exportProfile, profiler.json())


@contextlib.contextmanager
def cpu_threads(opts, device, log: Logger):
    """torch's intra-op threads for the run: --cpuThreads, else 1 on the CPU (several threads can collapse
    when other processes load the machine); restored afterwards (main() may run in-process)."""
    n = opts.cpuThreads if opts.cpuThreads is not None else (1 if device.type == "cpu" else None)
    if n is None:
        yield
        return
    if device.type == "cpu":
        log.info(f"CPU run: torch uses {n} thread(s)" + ("" if opts.cpuThreads is not None else
                 " (the default on the CPU: several threads can collapse under load; --cpuThreads=N to change)"))
    import torch
    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def run(opts, log: Logger) -> None:
    """Everything after the options banner."""
    check_paths(opts)
    check_limits(opts)
    for path in opts.staticPlugins:  # the only way user code enters the process
        log.info(f"Loading plugin module: {path}")
        api.load_plugin(path)
    device = select_device(opts)
    for line in device_lines(device):
        log.info(line)
    for line in notes(opts):
        log.info(line)
    with cpu_threads(opts, device, log):
        _run(opts, device, log)


def _run(opts, device, log: Logger) -> None:
    """Build or load, then time deserialization, or run inference."""
    engine = load_engine(opts.loadEngine, device, log) if opts.loadEngine else build_engine(opts, device, log)
    memory.log_lines(([memory.deserialization_line(engine)] if opts.loadEngine else []) + memory.engine_lines(engine),
                     log)
    if opts.timeDeserialize:
        _time_deserialize(engine, opts, log)
        return
    if opts.dumpRefit:
        dump_refit(engine, log)
    if opts.dumpOptimizationProfile:
        dump_profiles(engine, log)
    if opts.skipInference:
        emit_layer_info(engine, None, opts, log)
        log.info("Skipped inference phase since --skipInference is added.")
        return
    inference(engine, opts, make_backend(engine, opts, log), log)


def dump_refit(engine, log: Logger) -> None:
    """--dumpRefit: the weights a refit takes (ONNX initializer names), or why there are none."""
    names = api.refittable_weights(engine)
    if not names:
        log.warn("--dumpRefit: the engine is not refittable (build it with --refit or --stripWeights)")
        return
    log.info(f"Refittable weights ({len(names)}; set by ONNX initializer name):")
    for name, dtype, shape in names:
        log.info(f"  {name} {dtype} {fmt_dims(tuple(shape))}")
