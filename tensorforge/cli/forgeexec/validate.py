"""Cross-flag checks and derived values (10.x rules); errors raise UsageError, warnings are returned."""
from __future__ import annotations

from .flags import PRECISION_FLAGS
from .options import Options
from .shapes import UsageError, complete_profile, parse_name_files, parse_shapes
from .specs import (parse_layer_output_types, parse_layer_precisions, parse_mem_pools, parse_percentiles,
                    parse_tactic_sources)

_WEAK = ("Weakly-typed networks have been deprecated (precision flags --fp16, --bf16, --int8, --fp8, --int4 and "
         "--best); consider --stronglyTyped with an explicitly typed model.")
_RANGES = {  # dest: (lowest allowed value, message)
    "iterations": (1, "--iterations must be at least 1"),
    "warmUp": (0, "--warmUp must not be negative"),
    "sleepTime": (0, "--sleepTime must not be negative"),
    "idleTime": (0, "--idleTime must not be negative"),
    "infStreams": (1, "--infStreams must be at least 1"),
    "avgRuns": (1, "--avgRuns must be at least 1"),
    "avgTiming": (1, "--avgTiming must be at least 1"),
    "builderOptimizationLevel": (0, "--builderOptimizationLevel must be in [0, 5]"),
    "maxAuxStreams": (0, "--maxAuxStreams must not be negative"),
    "useProfile": (0, "--useProfile must not be negative"),
    "cpuThreads": (1, "--cpuThreads must be at least 1"),
    "device": (0, "--device must not be negative"),
}
_CHOICES = {
    "precisionConstraints": ("none", "prefer", "obey"),
    "sparsity": ("disable", "enable", "force"),
    "allocationStrategy": ("static", "profile", "runtime"),
    "activationMemory": ("arena", "direct"),
}


def validate(opts: Options) -> list[str]:
    """Check opts, fill derived fields and return the warnings to print."""
    warns: list[str] = []
    _check_model(opts, warns)
    _check_numbers(opts, warns)
    _check_precisions(opts, warns)
    _check_build_specs(opts, warns)
    _check_shapes(opts, warns)
    opts.percentiles = parse_percentiles(opts.percentile)
    opts.load_inputs = parse_name_files(opts.loadInputs) if opts.loadInputs else {}
    opts.profiler_enabled = bool(opts.dumpProfile or opts.exportProfile)
    if opts.duration == -1:
        warns.append("--duration=-1 is specified, inference will run in an endless loop until aborted with "
                     "CTRL-C (SIGINT)")
    return warns


def _check_model(opts: Options, warns: list[str]) -> None:
    """One model source; --saveEngine and --loadEngine exclude each other."""
    if not opts.onnx and not opts.loadEngine:
        raise UsageError("Model missing or format not recognized")
    if opts.saveEngine and opts.loadEngine:
        raise UsageError("--saveEngine and --loadEngine cannot be specified at the same time")
    if opts.dynamicPlugins:  # refused, never silently ignored
        raise UsageError("--dynamicPlugins: engines never store host code; load plugin modules with "
                         "--staticPlugins=<file.py> when building and when loading")
    if opts.onnx and opts.loadEngine:
        warns.append("--onnx is ignored because --loadEngine is given")


def _check_numbers(opts: Options, warns: list[str]) -> None:
    """Range checks and choice flags."""
    for dest, (low, msg) in _RANGES.items():
        v = getattr(opts, dest)
        if v is not None and v < low:
            raise UsageError(msg)
    if opts.duration < 0 and opts.duration != -1:
        raise UsageError("--duration must be a non-negative number of seconds, or -1")
    if opts.builderOptimizationLevel is not None and opts.builderOptimizationLevel > 5:
        warns.append(f"--builderOptimizationLevel={opts.builderOptimizationLevel} behaves like 5")
        opts.builderOptimizationLevel = 5
    for dest, choices in _CHOICES.items():
        if getattr(opts, dest) not in choices:
            raise UsageError(f"Invalid value '{getattr(opts, dest)}' for --{dest} (choices: {'|'.join(choices)})")
    if opts.sparsity == "force":
        warns.append("--sparsity=force has been deprecated")
    pv = {"default": "layer_names_only", "verbose": "detailed"}.get(opts.profilingVerbosity)
    if pv:
        warns.append(f"--profilingVerbosity={opts.profilingVerbosity} has been deprecated by "
                     f"--profilingVerbosity={pv}.")
        opts.profilingVerbosity = pv
    if opts.profilingVerbosity not in ("layer_names_only", "detailed", "none"):
        raise UsageError(f"Unknown profilingVerbosity: {opts.profilingVerbosity} "
                         "(choices: layer_names_only|detailed|none)")


def _check_precisions(opts: Options, warns: list[str]) -> None:
    """10.x precision rules: stronglyTyped turns the flags off; best/stronglyTyped and fp8/int8 are errors."""
    used = [p for p in PRECISION_FLAGS if getattr(opts, p)] + (["best"] if opts.best else [])
    if used:
        warns.append(_WEAK)
    if opts.fp8 and (opts.int8 or opts.best):
        raise UsageError("Invalid usage, fp8 and int8 aren't allowed to be enabled together.")
    if opts.stronglyTyped:
        if opts.best:
            raise UsageError("Invalid usage, --best is not allowed with --stronglyTyped.")
        if used:
            warns.append("Invalid usage, setting " + ", ".join(f"--{p}" for p in used) + " is not allowed with "
                         "--stronglyTyped; the flags are ignored and the types of the model are used.")
            for p in PRECISION_FLAGS:
                setattr(opts, p, False)
    has_layers = bool(opts.layerPrecisions or opts.layerOutputTypes)
    if opts.precisionConstraints != "none" and not has_layers:
        warns.append('When --precisionConstraints flag is set to "obey" or "prefer", please add --layerPrecisions/'
                     "--layerOutputTypes flags to set layer-wise precisions and output types.")
    if opts.precisionConstraints == "none" and has_layers:
        warns.append('--layerPrecisions/--layerOutputTypes flags have no effect when --precisionConstraints flag is '
                     'set to "none".')


def _check_build_specs(opts: Options, warns: list[str]) -> None:
    """Parse memory pools, tactic sources and layer specs."""
    opts.mem_pools = parse_mem_pools(opts.memPoolSize) if opts.memPoolSize else {}
    opts.tactic_sources = parse_tactic_sources(opts.tacticSources) if opts.tacticSources else None
    opts.layer_precisions = parse_layer_precisions(opts.layerPrecisions) if opts.layerPrecisions else {}
    opts.layer_output_types = parse_layer_output_types(opts.layerOutputTypes) if opts.layerOutputTypes else {}
    if opts.noBuilderCache and opts.timingCacheFile:
        warns.append("--timingCacheFile is ignored because --noBuilderCache is given")
    if opts.errorOnTimingCacheMiss and (opts.noBuilderCache or not opts.timingCacheFile):
        warns.append("--errorOnTimingCacheMiss has no effect without a timing cache (--timingCacheFile)")


def _check_shapes(opts: Options, warns: list[str]) -> None:
    """Parse --shapes and the build profiles (min/opt/max with broadcasting)."""
    opts.shapes = parse_shapes(opts.shapes) if opts.shapes else {}
    opts.profiles = []
    for spec in getattr(opts, "profile_specs", []):
        parsed = {k: parse_shapes(v, f"--{k}") for k, v in spec.items()}
        opts.profiles.append(complete_profile(parsed.get("minShapes", {}), parsed.get("optShapes", {}),
                                              parsed.get("maxShapes", {}), warns.append))
    if opts.loadEngine and opts.profiles:
        warns.append("--minShapes/--optShapes/--maxShapes are ignored when --loadEngine is given")
        opts.profiles = []
