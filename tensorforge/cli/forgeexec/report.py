"""Performance report (trtexec printPerformanceReport): prolog, trace details, summary, warnings, explanations."""
from __future__ import annotations

from .log import fmt
from .stats import F32, Result, Timing, Trace, summarize, to_timing

PRINT_THRESHOLD = 200  # groups shown at each end of a long trace
ENQUEUE_BOUND = F32(0.8)
UNSTABLE_COV = F32(2.5)
EXPLANATIONS = [
    "",
    "=== Explanations of the performance metrics ===",
    "Total Host Walltime: the host walltime from when the first query (after warmups) is enqueued to when the last "
    "query is completed.",
    "GPU Compute Time: the GPU latency to execute the kernels for a query.",
    "Total GPU Compute Time: the summation of the GPU Compute Time of all the queries. If this is significantly "
    "shorter than Total Host Walltime, the GPU may be under-utilized because of host-side overheads or data "
    "transfers.",
    "Throughput: the observed throughput computed by dividing the number of queries by the Total Host Walltime. If "
    "this is significantly lower than the reciprocal of GPU Compute Time, the GPU may be under-utilized because of "
    "host-side overheads or data transfers.",
    "Enqueue Time: the host latency to enqueue a query. If this is longer than GPU Compute Time, the GPU may be "
    "under-utilized.",
    "H2D Latency: the latency for host-to-device data transfers for input tensors of a single query.",
    "D2H Latency: the latency for device-to-host data transfers for output tensors of a single query.",
    "Latency: the summation of H2D Latency, GPU Compute Time, and D2H Latency. This is the latency to infer a single "
    "query.",
]
PROFILER_SUPPRESSED = [
    "The e2e network timing is not reported since it is inaccurate due to the extra synchronizations when the "
    "profiler is enabled.",
    "To show e2e network timing report, add --separateProfileRun to profile layer timing in a separate run or "
    "remove --dumpProfile to disable the profiler.",
]


def split_warmup(traces: list[Trace], warmup_ms: float) -> int:
    """Return the number of warm-up traces: those before the first with computeStart >= warmUp."""
    for i, t in enumerate(traces):
        if t.computeStart >= F32(warmup_ms):
            return i
    return len(traces)


def prolog(warmups: int, warmup_ms: float, timed: int, bench_ms) -> list[str]:
    """The two lines before the trace details."""
    return [f"Warmup completed {warmups} queries over {fmt(warmup_ms)} ms",
            f"Timing trace has {timed} queries over {fmt(F32(bench_ms) / F32(1000))} s"]


def trace_details(timings: list[Timing], runs_per_avg: int, dev: str = "GPU") -> list[str]:
    """`=== Trace details ===`: one average line per full group of runs_per_avg queries (dev: GPU|CPU)."""
    lines = ["", "=== Trace details ===", f"Trace averages of {runs_per_avg} runs:"]
    max_nb = PRINT_THRESHOLD * runs_per_avg
    size, count, idx = len(timings), 0, 0
    acc = [F32(0)] * 4
    k = F32(runs_per_avg)
    while idx < size:
        if size > 2 * max_nb and idx == max_nb:
            lines.append(f"... Omitting {size - 2 * max_nb} lines")
            idx = size - max_nb - 1
        t = timings[idx]
        acc = [F32(acc[0] + t.enq), F32(acc[1] + t.h2d), F32(acc[2] + t.compute), F32(acc[3] + t.d2h)]
        count += 1
        if count == runs_per_avg:
            host = F32(F32(acc[1] + acc[2]) + acc[3])
            lines.append(f"Average on {runs_per_avg} runs - {dev} latency: {fmt(F32(acc[2] / k))} ms - Host latency: "
                         f"{fmt(F32(host / k))} ms (enqueue {fmt(F32(acc[0] / k))} ms)")
            count, acc = 0, [F32(0)] * 4
        idx += 1
    return lines


def perf_string(r: Result, percentiles) -> str:
    """`min = a ms, max = b ms, mean = c ms, median = d ms, percentile(P%) = e ms, ...`."""
    s = f"min = {fmt(r.min)} ms, max = {fmt(r.max)} ms, mean = {fmt(r.mean)} ms, median = {fmt(r.median)} ms"
    return s + "".join(f", percentile({fmt(p)}%) = {fmt(v)} ms" for p, v in zip(percentiles, r.percentiles))


def epilog(timings: list[Timing], wall_ms, percentiles, inf_streams: int, host_timing: bool = False):
    """`=== Performance summary ===` lines, warnings and verbose explanations as (severity, line) pairs.
    host_timing (the CPU backend): the compute is the CPU's, so the labels say CPU."""
    n, dev = len(timings), "CPU" if host_timing else "GPU"
    throughput = F32(F32(F32(n) / F32(wall_ms)) * F32(1000))
    res = {name: summarize([getattr(t, name)() if name == "latency" else getattr(t, name) for t in timings],
                           percentiles) for name in ("latency", "enq", "h2d", "compute", "d2h")}
    out = [("I", ""), ("I", "=== Performance summary ==="), ("I", f"Throughput: {fmt(throughput)} qps")]
    for label, name in (("Latency", "latency"), ("Enqueue Time", "enq"), ("H2D Latency", "h2d"),
                        (f"{dev} Compute Time", "compute"), ("D2H Latency", "d2h")):
        out.append(("I", f"{label}: {perf_string(res[name], percentiles)}"))
    out.append(("I", f"Total Host Walltime: {fmt(F32(wall_ms) / F32(1000))} s"))
    out.append(("I", f"Total {dev} Compute Time: {fmt(F32(F32(res['compute'].mean * F32(n)) / F32(1000)))} s"))
    out += [("W", w) for w in warnings(res, inf_streams, host_timing)]
    out.append(("I", "Explanations of the performance metrics are printed in the verbose logs."))
    out += [("V", line.replace("GPU", dev)) for line in EXPLANATIONS]
    out.append(("I", ""))
    return out


def warnings(res: dict, inf_streams: int, host_timing: bool) -> list[str]:
    """The bound/instability warnings, each a `* message` line and an indented hint."""
    comp = res["compute"].median
    out = []
    if not host_timing and res["enq"].median > ENQUEUE_BOUND * comp:
        out += ["* Throughput may be bound by Enqueue Time rather than GPU Compute and the GPU may be under-utilized.",
                "  If not already in use, --useCudaGraph (utilize CUDA graphs where possible) may increase the "
                "throughput."]
    if res["h2d"].median >= comp:
        out += ["* Throughput may be bound by host-to-device transfers for the inputs rather than GPU Compute and the "
                "GPU may be under-utilized.", "  Add --noDataTransfers flag to disable data transfers."]
    if res["d2h"].median >= comp:
        out += ["* Throughput may be bound by device-to-host transfers for the outputs rather than GPU Compute and "
                "the GPU may be under-utilized.", "  Add --noDataTransfers flag to disable data transfers."]
    if res["compute"].coeff_var > UNSTABLE_COV and host_timing:  # no GPU clocks to lock on the CPU
        out += [f"* CPU compute time is unstable, with coefficient of variance = {fmt(res['compute'].coeff_var)}%.",
                "  Other processes competing for the CPU, or torch threads contending (--cpuThreads), may cause it; "
                "an idle machine and --cpuThreads=1 may improve the stability."]
    elif res["compute"].coeff_var > UNSTABLE_COV:
        out += [f"* GPU compute time is unstable, with coefficient of variance = {fmt(res['compute'].coeff_var)}%.",
                "  If not already in use, locking GPU clock frequency or adding --useSpinWait may improve the "
                "stability."]
    if inf_streams > 1:
        out += ["* Multiple inference streams are used. Latencies may not be accurate since inferences may run in "
                " parallel. Please use \"Throughput\" as the performance metric instead."]
    return out


def performance_report(traces: list[Trace], warmup_ms: float, avg_runs: int, percentiles, inf_streams: int = 1,
                       host_timing: bool = False, profiler_in_run: bool = False):
    """The whole report as (severity, line) pairs; traces must be sorted by h2dStart."""
    warmups = split_warmup(traces, warmup_ms)
    if warmups == len(traces):
        return [("W", "No queries were timed after the warm-up; no performance summary is printed.")]
    bench_ms = F32(traces[-1].d2hEnd - traces[warmups].h2dStart)
    out = [("I", line) for line in prolog(warmups, warmup_ms, len(traces) - warmups, bench_ms)]
    if profiler_in_run:
        return out + [("I", line) for line in PROFILER_SUPPRESSED]
    timings = [to_timing(t) for t in traces[warmups:]]
    out += [("I", line) for line in trace_details(timings, avg_runs, "CPU" if host_timing else "GPU")]
    return out + epilog(timings, bench_ms, percentiles, inf_streams, host_timing)
