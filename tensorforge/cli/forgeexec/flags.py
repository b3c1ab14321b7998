"""The flag table (trtexec 10.x names and defaults) and the help text generated from it."""
from __future__ import annotations

from dataclasses import dataclass

from .api import config_default

SECTIONS = ("Model", "Build", "Inference", "Reporting", "System", "Help")
PRECISION_FLAGS = ("fp16", "bf16", "int8", "fp8", "int4")


@dataclass(frozen=True)
class Flag:
    """One command-line flag: `--name[=value]` stored in Options.<dest>."""

    name: str
    kind: str  # bool | int | float | str
    dest: str
    default: object
    section: str
    help: str
    metavar: str = ""
    repeat: bool = False
    deprecated: str = ""  # warning printed when the flag is used
    note: str = ""  # what the flag does today in tensorforge, logged when it is used
    noop: str = ""  # warning printed when a flag that has no effect is used


def _f(name, kind, default, section, help, metavar="", dest=None, **kw) -> Flag:
    """Build a Flag; dest defaults to the name without dashes."""
    return Flag(name, kind, dest or name.lstrip("-"), default, section, help, metavar, **kw)


_NOOP = "accepted for compatibility; it has no effect in tensorforge"
_NOEFFECT = "has no effect in tensorforge"
FLAGS: list[Flag] = [
    _f("--onnx", "str", None, "Model", "ONNX model file, or zoo:NAME for a built-in model", "<file>"),
    # Build
    _f("--minShapes", "str", None, "Build", "Build with dynamic shapes using a profile with the min shapes provided",
       "spec", repeat=True),
    _f("--optShapes", "str", None, "Build", "Build with dynamic shapes using a profile with the opt shapes provided",
       "spec", repeat=True),
    _f("--maxShapes", "str", None, "Build", "Build with dynamic shapes using a profile with the max shapes provided",
       "spec", repeat=True),
    _f("--profile", "int", None, "Build", "Following min/opt/max shape flags define optimization profile N",
       "N", repeat=True),
    _f("--inputIOFormats", "str", None, "Build", "Type and format of each input tensor (type:fmt[+fmt])", "spec",
       note=_NOOP + " (I/O tensors keep the model's types and a linear layout)"),
    _f("--outputIOFormats", "str", None, "Build", "Type and format of each output tensor (type:fmt[+fmt])", "spec",
       note=_NOOP + " (I/O tensors keep the model's types and a linear layout)"),
    _f("--memPoolSize", "str", None, "Build", "pool:size,... pools: workspace, dlaSRAM, dlaLocalDRAM, dlaGlobalDRAM,"
       " tacticSharedMem; size in MiB, or with a B/K/M/G suffix", "poolspec"),
    _f("--profilingVerbosity", "str", "layer_names_only", "Build",
       "Engine profiling verbosity: layer_names_only|detailed|none", "mode"),
    _f("--avgTiming", "int", config_default("avg_timing"), "Build", "Number of timing iterations averaged per tactic"
       f" (default = {config_default('avg_timing')})", "M"),
    _f("--refit", "bool", False, "Build", "Mark the engine as refittable (it stores the ONNX graph without weight"
       " data; refit with `tensorforge refit` or tensorforge.Refitter)"),
    _f("--stripWeights", "bool", False, "Build", "Strip weights from the plan (refit before inference; implies"
       " --refit)"),
    _f("--versionCompatible", "bool", False, "Build", "Build a version-compatible engine",
       noop=_NOEFFECT + " (an engine runs only with the tensorforge version that built it)"),
    _f("--vc", "bool", False, "Build", "Alias of --versionCompatible", dest="versionCompatible",
       noop=_NOEFFECT + " (an engine runs only with the tensorforge version that built it)"),
    _f("--sparsity", "str", "disable", "Build", "Structured sparsity: disable|enable|force", "spec",
       noop=_NOEFFECT + " (no structured-sparsity kernels)"),
    _f("--noTF32", "bool", False, "Build", "Disable tf32 precision (default is to enable tf32, in addition to fp32)"),
    _f("--fp16", "bool", False, "Build", "Enable fp16 precision, in addition to fp32"),
    _f("--bf16", "bool", False, "Build", "Enable bf16 precision, in addition to fp32"),
    _f("--int8", "bool", False, "Build", "Enable int8 precision, in addition to fp32"),
    _f("--fp8", "bool", False, "Build", "Enable fp8 precision, in addition to fp32"),
    _f("--int4", "bool", False, "Build", "Enable int4 precision, in addition to fp32 (weight-only)"),
    _f("--best", "bool", False, "Build", "Enable all precisions to achieve the best performance"),
    _f("--stronglyTyped", "bool", False, "Build", "Create a strongly typed network (precision flags are ignored)"),
    _f("--precisionConstraints", "str", "none", "Build", "Layer precision constraints: none|prefer|obey", "spec"),
    _f("--layerPrecisions", "str", None, "Build", "Per-layer compute precision: name:prec,... (fp32|fp16|bf16|"
       "int32|int8; one * wildcard per name)", "spec"),
    _f("--layerOutputTypes", "str", None, "Build", "Per-layer output types: name:type[+type],...", "spec"),
    _f("--calib", "str", None, "Build", "Read INT8 calibration cache file", "<file>",
       note="its scales quantize a model without Q/DQ (with --int8 / --fp8)"),
    _f("--saveEngine", "str", None, "Build", "Save the serialized engine", "<file>"),
    _f("--loadEngine", "str", None, "Build", "Load a serialized engine", "<file>"),
    _f("--skipInference", "bool", False, "Build", "Exit after the engine has been built and skip inference perf"
       " measurement"),
    _f("--buildOnly", "bool", False, "Build", "Deprecated alias of --skipInference", dest="skipInference",
       deprecated="--buildOnly was removed in trtexec 10.0; it is accepted as an alias of --skipInference."),
    _f("--tacticSources", "str", None, "Build", "Tactic sources: +-lib,... (CUBLAS, CUBLAS_LT, CUDNN,"
       " EDGE_MASK_CONVOLUTIONS, JIT_CONVOLUTIONS, ATEN, TRITON)", "tactics"),
    _f("--noBuilderCache", "bool", False, "Build", "Disable the timing cache in the builder (--timingCacheFile is"
       " neither read nor written)"),
    _f("--timingCacheFile", "str", None, "Build", "Save/load the serialized global timing cache", "<file>"),
    _f("--errorOnTimingCacheMiss", "bool", False, "Build", "Fail the build when a tactic to be timed is not in the"
       " timing cache (--timingCacheFile; no effect at --builderOptimizationLevel=0)"),
    _f("--builderOptimizationLevel", "int", None, "Build", "Builder optimization level 0-5: 0 = no timing, first"
       " heuristic tactic (timing cache ignored); 1/2 = time the top 2/4 candidates; 3 (default) = time all default"
       " candidates; 4/5 = also the extended tactic spaces", "N"),
    _f("--activationMemory", "str", "direct", "Build", "Activation memory: direct (default) = kernel-allocated"
       " results are used in place without a copy and freed after their last use; arena = every activation in"
       " the planned arena", "mode"),
    _f("--maxTactics", "int", -1, "Build", "Maximum number of tactics timed per layer (default = -1)", "N",
       note=_NOOP + " (the optimization level decides how many tactics are timed)"),
    _f("--maxAuxStreams", "int", None, "Build", "Maximum number of auxiliary streams per inference stream", "N"),
    # Inference
    _f("--shapes", "str", None, "Inference", "Set input shapes for inference: name:AxBxC,...", "spec"),
    _f("--loadInputs", "str", None, "Inference", "Load input values from raw files: name:file,...", "spec"),
    _f("--iterations", "int", 10, "Inference", "Run at least N inference iterations (default = 10)", "N"),
    _f("--warmUp", "float", 200.0, "Inference", "Run for N milliseconds to warmup before measuring (default = 200)",
       "N"),
    _f("--duration", "float", 3.0, "Inference", "Run for at least N seconds wallclock (default = 3); -1 runs until"
       " Ctrl-C", "N"),
    _f("--sleepTime", "int", 0, "Inference", "Delay the GPU start by N milliseconds (default = 0)", "N"),
    _f("--idleTime", "int", 0, "Inference", "Sleep N milliseconds between two iterations (default = 0)", "N"),
    _f("--infStreams", "int", 1, "Inference", "Instantiate N execution contexts on N streams (default = 1)", "N"),
    _f("--streams", "int", 1, "Inference", "Deprecated alias of --infStreams", "N", dest="infStreams",
       deprecated="--streams has been deprecated; use --infStreams instead."),
    _f("--exposeDMA", "bool", False, "Inference", "Serialize DMA transfers to and from device (queue depth 1)"),
    _f("--noDataTransfers", "bool", False, "Inference", "Disable DMA transfers to and from device"),
    _f("--useManagedMemory", "bool", False, "Inference", "Use managed memory instead of separate host and device"
       " allocations", note=_NOOP),
    _f("--useSpinWait", "bool", False, "Inference", "Actively synchronize on GPU events"),
    _f("--threads", "bool", False, "Inference", "Enable multithreading to drive engines with independent threads"),
    _f("--useCudaGraph", "bool", False, "Inference", "Use CUDA graph to capture engine execution and then launch"
       " inference"),
    _f("--timeDeserialize", "bool", False, "Inference", "Time the amount of time it takes to deserialize the engine"
       " and exit"),
    _f("--separateProfileRun", "bool", False, "Inference", "Do not attach the profiler in the benchmark run; if"
       " profiling is enabled, a second profile run is executed"),
    _f("--persistentCacheRatio", "float", 0.0, "Inference", "Fraction of the L2 cache used as persisting cache",
       "ratio", note=_NOOP),
    _f("--useProfile", "int", None, "Inference", "Use optimization profile N for inference (default = 0)", "N"),
    _f("--allocationStrategy", "str", "static", "Inference", "Activation memory: static|profile|runtime", "s",
       note=_NOOP + " (activation memory is planned once per engine)"),
    # Reporting
    _f("--verbose", "bool", False, "Reporting", "Use verbose logging (default = false)"),
    _f("--avgRuns", "int", 10, "Reporting", "Report performance measurements averaged over N iterations"
       " (default = 10)", "N"),
    _f("--percentile", "str", "90,95,99", "Reporting", "Report performance for the P1,P2,... percentages (0<=P<=100;"
       " default = 90,95,99)", "P1,P2"),
    _f("--dumpRefit", "bool", False, "Reporting", "Print the refittable layers and weights"),
    _f("--dumpOutput", "bool", False, "Reporting", "Print the output tensors of the last inference iteration"),
    _f("--dumpRawBindingsToFile", "bool", False, "Reporting", "Write I/O tensors to raw files", note=_NOOP),
    _f("--dumpProfile", "bool", False, "Reporting", "Print profile information per layer"),
    _f("--dumpLayerInfo", "bool", False, "Reporting", "Print layer information of the engine"),
    _f("--dumpOptimizationProfile", "bool", False, "Reporting", "Print the optimization profiles of the engine"),
    _f("--exportTimes", "str", None, "Reporting", "Write the timing results in a json file", "<file>"),
    _f("--exportOutput", "str", None, "Reporting", "Write the output tensors to a json file", "<file>"),
    _f("--exportProfile", "str", None, "Reporting", "Write the profile information per layer in a json file",
       "<file>"),
    _f("--exportLayerInfo", "str", None, "Reporting", "Write the layer information of the engine in a json file",
       "<file>"),
    _f("--quantReport", "str", None, "Reporting", "Write the quantization report in a json file: every Q/DQ "
       "not fused (with the reason); per quantized layer its precision, tactic, time and FP16-form time", "<file>"),
    _f("--monitor", "bool", False, "Reporting", "Sample GPU clocks, power, temperature, utilization and memory"
       " (NVML, nvidia-ml-py) during the run; report min/mean/max, qps per watt and throttling"),
    # System
    _f("--device", "int", 0, "System", "Select CUDA device N (default = 0)", "N"),
    _f("--cpuThreads", "int", None, "System", "torch CPU threads (default = 1 on the CPU, where several threads can"
       " collapse under load; the torch default on a GPU)", "N"),
    _f("--useDLACore", "int", None, "System", "Select DLA core N", "N", noop=_NOEFFECT + " (there is no DLA)"),
    _f("--staticPlugins", "str", None, "System", "Plugin module (a Python file calling tensorforge.plugin.register) to load; repeatable", "<file>",
       repeat=True),
    _f("--plugins", "str", None, "System", "Deprecated alias of --staticPlugins", "<file>", dest="staticPlugins",
       repeat=True, deprecated="--plugins has been deprecated; use --staticPlugins instead."),
    _f("--dynamicPlugins", "str", None, "System", "Refused: engines never store host code (use --staticPlugins)", "<file>",
       repeat=True),
    _f("--help", "bool", False, "Help", "Print this message", dest="help"),
    _f("-h", "bool", False, "Help", "Print this message", dest="help"),
]
BY_NAME = {f.name: f for f in FLAGS}


def defaults() -> dict:
    """Return {dest: default} for every flag (first definition of a dest wins)."""
    out: dict = {}
    for f in FLAGS:
        out.setdefault(f.dest, [] if f.repeat else f.default)
    return out


def add_to_parser(parser, names) -> None:
    """Declare forgeexec's flags `names` (same names, dests, defaults and help) on an argparse parser,
    so that other commands speak forgeexec's vocabulary."""
    for name in names:
        f = BY_NAME[name]
        if f.kind == "bool":
            parser.add_argument(name, dest=f.dest, action="store_true", help=f.help)
        else:
            parser.add_argument(name, dest=f.dest, type={"int": int, "float": float, "str": str}[f.kind],
                                default=f.default, metavar=f.metavar.strip("<>") or None, help=f.help)


def help_text() -> str:
    """Return the full help text, one block per section."""
    lines = ["forgeexec: benchmark ONNX models and tensorforge engines (trtexec-compatible flags)", "",
             "Usage:", "  forgeexec [--onnx=<file>|--loadEngine=<file>] [options]", ""]
    for sec in SECTIONS:
        lines.append(f"=== {sec} Options ===")
        for f in FLAGS:
            if f.section == sec:
                left = f"{f.name}={f.metavar}" if f.kind != "bool" else f.name
                lines.append(f"  {left:<32}{f.help}")
        lines.append("")
    lines.append("Note: arguments are --name=value; boolean switches take no value.")
    return "\n".join(lines)
