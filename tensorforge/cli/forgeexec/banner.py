"""The options banner (=== Model/Build/System/Inference/Reporting Options ===) and device information."""
from __future__ import annotations

import os
import platform

import torch

from .log import fmt
from .shapes import fmt_dims


def _onoff(v) -> str:
    """Enabled/Disabled."""
    return "Enabled" if v else "Disabled"


def _shapes_line(shapes: dict) -> str:
    """`x=1x3x224x224, y=...` or `model`."""
    return ", ".join(f"{n}={fmt_dims(s)}" for n, s in shapes.items()) if shapes else "model"


def _precision(o) -> str:
    """FP32+FP16+... or Strongly Typed."""
    if o.stronglyTyped:
        return "Strongly Typed"
    extra = [p.upper() for p in ("fp16", "bf16", "int8", "fp8", "int4") if getattr(o, p)]
    return "+".join(["FP32"] + extra + (["BEST"] if o.best else []))


def model_lines(o) -> list[str]:
    """=== Model Options ===."""
    if o.loadEngine:
        return ["=== Model Options ===", "Format: *", "Model: ", "Output:"]
    return ["=== Model Options ===", "Format: ONNX", f"Model: {o.onnx}", "Output:"]


def build_lines(o) -> list[str]:
    """=== Build Options === (empty with --loadEngine)."""
    if o.loadEngine:
        return ["", "=== Build Options ==="]
    pools = ", ".join(f"{p}: {fmt(o.mem_pools[p] / 2 ** 20) + ' MiB' if p in o.mem_pools else 'default'}"
                      for p in ("workspace", "dlaSRAM", "dlaLocalDRAM", "dlaGlobalDRAM", "tacticSharedMem"))
    ts = o.tacticSources or "Using default tactic sources"
    lines = ["", "=== Build Options ===", f"Memory Pools: {pools}", f"avgTiming: {o.avgTiming}",
             f"Precision: {_precision(o)}", f"TF32: {_onoff(not o.noTF32)}",
             f"Precision constraints: {o.precisionConstraints}",
             "LayerPrecisions: " + ", ".join(f"{k}:{v}" for k, v in o.layer_precisions.items()),
             "LayerOutputTypes: " + ", ".join(f"{k}:{'+'.join(v)}" for k, v in o.layer_output_types.items()),
             f"Sparsity: {_onoff(o.sparsity != 'disable')}", f"Refit: {_onoff(o.refit or o.stripWeights)}",
             f"Skip inference: {_onoff(o.skipInference)}", f"Save engine: {o.saveEngine or ''}",
             "Load engine: ", f"Profiling verbosity: {o.profilingVerbosity}", f"Tactic sources: {ts}",
             f"timingCacheMode: {'disable' if o.noBuilderCache else 'global' if o.timingCacheFile else 'local'}",
             f"timingCacheFile: {o.timingCacheFile or ''}",
             f"MaxAuxStreams: {-1 if o.maxAuxStreams is None else o.maxAuxStreams}",
             f"BuilderOptimizationLevel: {3 if o.builderOptimizationLevel is None else o.builderOptimizationLevel}",
             f"Activation memory: {o.activationMemory}"]
    if not o.profiles:
        lines.append(f"Input build shapes: {_shapes_line(o.shapes) if o.shapes else 'model'}")
    for i, prof in enumerate(o.profiles):
        for name, (mn, op, mx) in prof.items():
            lines.append(f"Input build shape (profile {i}): {name}={fmt_dims(mn)}+{fmt_dims(op)}+{fmt_dims(mx)}")
    return lines


def system_lines(o) -> list[str]:
    """=== System Options ===."""
    return ["", "=== System Options ===", f"Device: {o.device}", "DLACore: ",
            "Plugins: " + " ".join(o.staticPlugins), ""]


def inference_lines(o) -> list[str]:
    """=== Inference Options ===."""
    dur = "-1 (until Ctrl-C)" if o.duration == -1 else f"{fmt(o.duration)}s"
    return ["=== Inference Options ===", "Batch: Explicit", f"Input inference shapes: {_shapes_line(o.shapes)}",
            f"Iterations: {o.iterations}", f"Duration: {dur} (+ {fmt(o.warmUp)}ms warm up)",
            f"Sleep time: {o.sleepTime}ms", f"Idle time: {o.idleTime}ms", f"Inference Streams: {o.infStreams}",
            f"ExposeDMA: {_onoff(o.exposeDMA)}", f"Data transfers: {_onoff(not o.noDataTransfers)}",
            f"Spin-wait: {_onoff(o.useSpinWait)}", f"Multithreading: {_onoff(o.threads)}",
            f"CUDA Graph: {_onoff(o.useCudaGraph)}", f"Separate profiling: {_onoff(o.separateProfileRun)}",
            f"Time Deserialize: {_onoff(o.timeDeserialize)}",
            f"Optimization Profile Index: {o.useProfile or 0}",
            "Inputs: " + ", ".join(f"{k}<-{v}" for k, v in o.load_inputs.items())]


def reporting_lines(o) -> list[str]:
    """=== Reporting Options ===."""
    return ["=== Reporting Options ===", f"Verbose: {_onoff(o.verbose)}", f"Averages: {o.avgRuns} inferences",
            "Percentiles: " + ",".join(fmt(p) for p in o.percentiles), f"Dump output: {_onoff(o.dumpOutput)}",
            f"Profile: {_onoff(o.profiler_enabled)}", f"Layer info: {_onoff(o.dumpLayerInfo)}",
            f"Export timing to JSON file: {o.exportTimes or ''}",
            f"Export output to JSON file: {o.exportOutput or ''}",
            f"Export profile to JSON file: {o.exportProfile or ''}",
            f"Export layer info to JSON file: {o.exportLayerInfo or ''}", ""]


def options_lines(o) -> list[str]:
    """All option blocks, in trtexec's order."""
    return model_lines(o) + build_lines(o) + system_lines(o) + inference_lines(o) + reporting_lines(o)


def cpu_name() -> str:
    """The CPU model name (from /proc/cpuinfo where available)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_lines(device: torch.device) -> list[str]:
    """=== Device Information === for a CUDA device or the CPU."""
    lines = ["=== Device Information ==="]
    if device.type != "cuda":
        lines += [f"Selected Device: CPU ({cpu_name()})", f"CPU cores: {os.cpu_count()}",
                  f"torch threads: {torch.get_num_threads()}", "CUDA: not available (everything runs on the CPU)"]
    else:
        lines += ["Available Devices: "]
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            lines.append(f'  Device {i}: "{p.name}" UUID: GPU-{getattr(p, "uuid", "")}')
        p = torch.cuda.get_device_properties(device)
        lines += [f"Selected Device: {p.name}", f"Selected Device ID: {device.index or 0}",
                  f"Compute Capability: {p.major}.{p.minor}", f"SMs: {p.multi_processor_count}",
                  f"Device Global Memory: {p.total_memory >> 20} MiB"]
        lines += _optional_props(p)
    import tensorforge
    return lines + ["", f"tensorforge version: {tensorforge.__version__}", f"torch version: {torch.__version__}"]


def _optional_props(p) -> list[str]:
    """Properties that only some torch versions expose."""
    out = []
    smem = getattr(p, "shared_memory_per_multiprocessor", None)
    if smem:
        out.append(f"Shared Memory per SM: {smem >> 10} KiB")
    bus = getattr(p, "memory_bus_width", None)
    if bus:
        out.append(f"Memory Bus Width: {bus} bits")
    l2 = getattr(p, "L2_cache_size", None)
    if l2:
        out.append(f"L2 Cache Size: {l2 >> 20} MiB")
    for attr, label in (("clock_rate", "Application Compute Clock Rate"),
                        ("memory_clock_rate", "Application Memory Clock Rate")):
        khz = getattr(p, attr, None)
        if khz:
            out.append(f"{label}: {fmt(khz / 1e6)} GHz")
    return out
