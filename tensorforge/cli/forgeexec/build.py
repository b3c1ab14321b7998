"""Build phase: BuilderConfig from the flags, build profiles from shape flags, build/save/load engines."""
from __future__ import annotations

import math
import time

import torch

from . import api
from .log import Logger, fmt
from .shapes import UsageError, check_names, fmt_dims, lookup

# What each builder flag does in the library today (one place to update as the library grows).
LIBRARY_STATUS = {
    "--int8": "a model without Q/DQ is quantized (tensorforge.quant; --calib scales or placeholders) and built "
              "strongly typed; a quantized layer keeps an INT8/FP8 tactic only where timing shows it faster than "
              "its FP16 form (see --quantReport)",
    "--fp8": "as --int8, in float8 e4m3fn",
    "--int4": "WARN:there is no int4 (weight-only) quantization; the flag is ignored",
    "--best": "enables fp16 and bf16, and int8 as --int8",
    "--memPoolSize": "accepted and validated, but it has no effect: tensorforge sizes its activation arena "
                     "itself and has no workspace or DLA pools",
}
_FIELD_FLAGS = {"error_on_timing_cache_miss": "--errorOnTimingCacheMiss", "verbose": "--verbose",
                "activation_memory": "--activationMemory"}


def select_device(opts) -> torch.device:
    """cuda:N when CUDA is available (N from --device), else the CPU."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    if opts.device >= torch.cuda.device_count():
        raise api.error(f"Cannot find device ID {opts.device}! ({torch.cuda.device_count()} device(s) found)")
    torch.cuda.set_device(opts.device)
    return torch.device("cuda", opts.device)


def precision_flags(opts, device: torch.device) -> dict:
    """fp16/bf16/int8/fp8 after --best (bf16 only on SM >= 8.0 or the CPU)."""
    flags = {p: bool(getattr(opts, p)) for p in ("fp16", "bf16", "int8", "fp8")}
    if opts.best and not opts.stronglyTyped:
        cap = torch.cuda.get_device_capability(device) if device.type == "cuda" else (8, 0)
        flags.update(fp16=True, int8=cap != (10, 3) or flags["int8"], bf16=cap >= (8, 0) or flags["bf16"])
    return flags


def config_fields(opts, device: torch.device, profiles: list, shape_inputs=()) -> dict:
    """BuilderConfig keyword arguments from the flags."""
    level = opts.builderOptimizationLevel
    return dict(**precision_flags(opts, device), tf32=not opts.noTF32, strongly_typed=opts.stronglyTyped,
                opt_level=api.config_default("opt_level") if level is None else level,
                timing_cache=None if opts.noBuilderCache else opts.timingCacheFile,
                max_aux_streams=opts.maxAuxStreams,
                tactic_sources=opts.tactic_sources, profiling_verbosity=opts.profilingVerbosity,
                error_on_timing_cache_miss=opts.errorOnTimingCacheMiss, activation_memory=opts.activationMemory,
                avg_timing=opts.avgTiming, precision_constraints=opts.precisionConstraints,
                layer_precisions=dict(opts.layer_precisions), layer_output_types=dict(opts.layer_output_types),
                profiles=[api.make_profile(p, shape_inputs) for p in profiles], device=str(device), verbose=opts.verbose,
                refit=opts.refit, strip_weights=opts.stripWeights)


def _default_triple(name: str, shape: tuple, is_values: bool, log: Logger) -> tuple:
    """trtexec's fallback for an input without shapes: dynamic dims become 1, shape-tensor values all 1s."""
    if is_values:
        s = (1,) * int(math.prod(shape))
        log.warn(f"Values missing for input shape tensor: {name}. Automatically setting values to: {fmt_dims(s)}")
    else:
        s = tuple(1 if d == -1 else d for d in shape)
        log.warn(f"Dynamic dimensions required for input: {name}, but no shapes were provided. "
                 f"Automatically overriding shape to: {fmt_dims(s)}")
    return s, s, s


def resolve_profiles(inputs: list, opts, log: Logger, shape_inputs=()) -> list[dict]:
    """Build profiles from min/opt/max (or --shapes as min=opt=max); missing dynamic dims become 1.
    For shape-tensor inputs (shape_inputs) the entries are the tensor's VALUES, not its shape."""
    names = [n for n, _, _ in inputs]
    dynamic = [(n, s) for n, _, s in inputs if -1 in s and n not in shape_inputs]
    needed = dynamic + [(n, s) for n, _, s in inputs if n in shape_inputs]
    for p in opts.profiles:
        check_names(p, names, "input")
    if opts.profiles and not dynamic:
        try:
            for p in opts.profiles:
                check_names(p, list(shape_inputs), "input")
        except UsageError:
            raise UsageError("Static model does not take explicit shapes since the shape of inference tensors "
                             "will be determined by the model itself") from None
    if not needed:
        return []
    check_names(opts.shapes, names, "input")
    out = []
    for p in opts.profiles or [{}]:
        prof = {}
        for name, shape in needed:
            triple = lookup(p, name)
            if triple is None and lookup(opts.shapes, name) is not None:
                s = lookup(opts.shapes, name)
                triple = (s, s, s)
            if triple is None:
                triple = _default_triple(name, shape, name in shape_inputs, log)
            prof[name] = tuple(tuple(x) for x in triple)
        for name in names:
            if name not in prof and lookup(p, name) is not None:
                prof[name] = lookup(p, name)
        out.append(prof)
    return out


def log_profiles(profiles: list[dict], log: Logger, shape_inputs=()) -> None:
    """`Set shape of input tensor X for optimization profile i to: MIN=... OPT=... MAX=...`."""
    for i, prof in enumerate(profiles):
        for name, (mn, op, mx) in prof.items():
            what = "input shape tensor" if name in shape_inputs else "shape of input tensor"
            log.info(f"Set {what} {name} for optimization profile {i} to: MIN={fmt_dims(mn)} "
                     f"OPT={fmt_dims(op)} MAX={fmt_dims(mx)}")


def build_engine(opts, device: torch.device, log: Logger):
    """Build from --onnx (logging the config notes, build time and size) and save with --saveEngine."""
    from .quantflags import apply as apply_quant_flags
    proto = apply_quant_flags(api.load_model(opts.onnx), opts, log)
    shape_inputs = api.shape_tensor_inputs(proto)
    profiles = resolve_profiles(api.model_inputs(proto), opts, log, shape_inputs)
    log_profiles(profiles, log, shape_inputs)
    cfg, dropped = api.make_config(config_fields(opts, device, profiles, shape_inputs))
    for name in dict.fromkeys(opts.given):
        if name in LIBRARY_STATUS:
            note = LIBRARY_STATUS[name]
            (log.warn if note.startswith("WARN:") else log.info)(f"{name}: {note.removeprefix('WARN:')}.")
    for field in dropped:
        flag = _FIELD_FLAGS.get(field)
        (log.info if flag in opts.given else log.verb)(
            f"{flag or field}: BuilderConfig has no '{field}' setting yet; it was not passed on.")
    t0 = time.perf_counter()
    engine = api.build(cfg, proto)
    log.info(f"Engine built in {fmt(time.perf_counter() - t0)} sec.")
    from .quantflags import report as quant_report
    quant_report(engine, opts, log)
    log.info(f"Created engine with size: {fmt(api.engine_size(engine) / 2 ** 20)} MiB")
    if opts.saveEngine:
        api.save_engine(engine, opts.saveEngine)
        log.info(f"Saved engine to {opts.saveEngine}")
    return engine


def load_engine(path: str, device: torch.device, log: Logger):
    """Load --loadEngine and log the deserialization time."""
    log.info(f"Loading engine from {path}")
    t0 = time.perf_counter()
    engine = api.load_engine(path)
    log.info(f"Engine deserialized in {fmt(time.perf_counter() - t0)} sec.")
    return engine


def time_deserialize(path: str, log: Logger, iterations: int = 20) -> None:
    """--timeDeserialize: time the first and then `iterations` more deserializations."""
    t0 = time.perf_counter()
    api.load_engine(path)
    first = (time.perf_counter() - t0) * 1000
    log.info(f"First deserialization time = {fmt(first)} milliseconds")
    t0 = time.perf_counter()
    for _ in range(iterations):
        api.load_engine(path)
    total = (time.perf_counter() - t0) * 1000
    log.info(f"Total deserialization time = {fmt(total)} milliseconds in {iterations} iterations, average "
             f"{fmt(total / iterations)} milliseconds/iteration")
