"""forgeexec's memory lines, in trtexec's words: the builder's `Total ... Memory: N bytes` block after the
engine is built or loaded, the context's device memory size, and after the run the peak GPU memory
(torch's allocator, reset when the run starts) and the process's host memory (RSS). On the CPU
everything is host memory and the lines say so."""
from __future__ import annotations

import os
import sys

from .log import Logger

MIB = 2 ** 20


def _nbytes(t) -> int:
    return t.numel() * t.element_size()


def engine_lines(engine) -> list[str]:
    """Persistent, weights and activation memory of an engine (trtexec prints these after a build)."""
    plan = engine.plan
    cpu = engine.device.type == "cpu"
    host = {n for n, t in plan.tensors.items() if t.kind == "weight" and t.host}  # constants read on the host
    host_w = sum(_nbytes(w) for n, w in engine.weights.items() if n in host)
    weights = sum(_nbytes(w) for n, w in engine.weights.items() if n not in host)
    where = " (host memory: the engine runs on the CPU)" if cpu else ""
    lines = [f"Total Host Persistent Memory: {host_w} bytes (constants read on the host)"]
    if not cpu:  # the engine's compiled kernels, loaded into device memory by the driver
        lines.append(f"Total Device Persistent Memory: {len(engine.artifacts)} bytes")
    lines.append(f"Total Activation Memory: {plan.device_memory_size} bytes{where}")
    lines.append(f"Total Weights Memory: {weights} bytes{where}")
    return lines


def deserialization_line(engine) -> str:
    """trtexec's `[MemUsageChange]` line after a load: the engine's weights by where they live (whole MiB)."""
    host = sum(_nbytes(w) for w in engine.weights.values() if w.device.type == "cpu")
    dev = sum(_nbytes(w) for w in engine.weights.values() if w.device.type != "cpu")
    h, d = round(host / MIB), round(dev / MIB)
    return (f"[MemUsageChange] tensorforge-managed allocation in engine deserialization: CPU +{h}, GPU +{d}, "
            f"now: CPU {h}, GPU {d} (MiB)")


def context_line(engine) -> str:
    """trtexec's line when a context is created (its activation memory at the largest profile shapes)."""
    kind = "host" if getattr(getattr(engine, "device", None), "type", "cuda") == "cpu" else "device"
    return f"Created execution context with {kind} memory size: {engine.device_memory_size / MIB:.6g} MiB"


def rss_bytes() -> tuple[int, int]:
    """(current, peak) resident set size of this process in bytes (current 0 where /proc is missing)."""
    import resource  # POSIX only: imported where it is used
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    try:
        with open("/proc/self/statm") as f:
            cur = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        cur = 0
    return cur, max(cur, peak)  # the two counters are sampled differently: peak never below now


def start_run(device) -> None:
    """Reset torch's peak-memory counter of `device` (CUDA) so the peak is the run's."""
    if device.type == "cuda":
        import torch
        torch.cuda.reset_peak_memory_stats(device)


def run_lines(device) -> list[str]:
    """After the run: peak GPU memory during it (CUDA) and the host memory (RSS) of the process."""
    lines = []
    if device.type == "cuda":
        import torch
        peak, reserved = torch.cuda.max_memory_allocated(device), torch.cuda.max_memory_reserved(device)
        lines.append(f"Peak GPU memory during the run: {peak / MIB:.6g} MiB allocated, {reserved / MIB:.6g} MiB "
                     "reserved (torch's allocator: weights, activations, I/O buffers, workspaces)")
    cur, peak = rss_bytes()
    host = f"Host memory (RSS): {cur / MIB:.6g} MiB now, peak {peak / MIB:.6g} MiB (process)"
    if device.type == "cpu":
        host += ": the engine runs on the CPU, so this is its memory (no GPU memory used)"
    lines.append(host)
    return lines


def log_lines(lines: list[str], log: Logger) -> None:
    for line in lines:
        log.info(line)
