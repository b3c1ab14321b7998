"""Golden tests of the performance report on hand-built traces (full text, fixed log clock)."""
from __future__ import annotations

import time

from tensorforge.cli.forgeexec.log import Logger
from tensorforge.cli.forgeexec.report import performance_report, trace_details
from tensorforge.cli.forgeexec.stats import Timing, Trace

CLOCK = time.struct_time((2025, 3, 4, 5, 6, 7, 0, 63, 0))
P = "[03/04/2025-05:06:07] [I] "
W = "[03/04/2025-05:06:07] [W] "
V = "[03/04/2025-05:06:07] [V] "


def _traces():
    """One warm-up query, then 10 timed queries 2 ms apart: h2d 0.25, compute 1.0..2.125, d2h 0.125, enq 0.5."""
    out = [Trace(0, 0.0, 0.5, 0.0, 0.25, 0.5, 0.75, 0.75, 0.875)]
    for i in range(1, 11):
        c, h = 1.0 + 0.125 * (i - 1), 2.0 * i
        out.append(Trace(0, h, h + 0.5, h, h + 0.25, h + 0.25, h + 0.25 + c, h + 0.25 + c, h + 0.375 + c))
    return out


def _render(lines, capsys, verbose=False):
    log = Logger(verbose=verbose, clock=lambda: CLOCK)
    for sev, line in lines:
        log.log(sev, line)
    return capsys.readouterr()


EXPECTED = """\
{P}Warmup completed 1 queries over 1 ms
{P}Timing trace has 10 queries over 0.0205 s
{P}
{P}=== Trace details ===
{P}Trace averages of 5 runs:
{P}Average on 5 runs - GPU latency: 1.25 ms - Host latency: 1.625 ms (enqueue 0.5 ms)
{P}Average on 5 runs - GPU latency: 1.875 ms - Host latency: 2.25 ms (enqueue 0.5 ms)
{P}
{P}=== Performance summary ===
{P}Throughput: 487.805 qps
{P}Latency: min = 1.375 ms, max = 2.5 ms, mean = 1.9375 ms, median = 1.9375 ms, percentile(90%) = 2.375 ms, \
percentile(95%) = 2.5 ms, percentile(99%) = 2.5 ms
{P}Enqueue Time: min = 0.5 ms, max = 0.5 ms, mean = 0.5 ms, median = 0.5 ms, percentile(90%) = 0.5 ms, \
percentile(95%) = 0.5 ms, percentile(99%) = 0.5 ms
{P}H2D Latency: min = 0.25 ms, max = 0.25 ms, mean = 0.25 ms, median = 0.25 ms, percentile(90%) = 0.25 ms, \
percentile(95%) = 0.25 ms, percentile(99%) = 0.25 ms
{P}GPU Compute Time: min = 1 ms, max = 2.125 ms, mean = 1.5625 ms, median = 1.5625 ms, percentile(90%) = 2 ms, \
percentile(95%) = 2.125 ms, percentile(99%) = 2.125 ms
{P}D2H Latency: min = 0.125 ms, max = 0.125 ms, mean = 0.125 ms, median = 0.125 ms, percentile(90%) = 0.125 ms, \
percentile(95%) = 0.125 ms, percentile(99%) = 0.125 ms
{P}Total Host Walltime: 0.0205 s
{P}Total GPU Compute Time: 0.015625 s
{P}Explanations of the performance metrics are printed in the verbose logs.
{P}
""".format(P=P)
EXPECTED_ERR = """\
{W}* GPU compute time is unstable, with coefficient of variance = 22.9783%.
{W}  If not already in use, locking GPU clock frequency or adding --useSpinWait may improve the stability.
""".format(W=W)


def test_golden_summary(capsys):
    out = _render(performance_report(_traces(), 1.0, 5, [90, 95, 99]), capsys)
    assert out.out == EXPECTED
    assert out.err == EXPECTED_ERR


def test_verbose_explanations(capsys):
    out = _render(performance_report(_traces(), 1.0, 5, [90, 95, 99]), capsys, verbose=True)
    lines = out.out.splitlines()
    i = lines.index(V + "=== Explanations of the performance metrics ===")
    assert lines[i - 1] == V
    assert lines[i + 1].startswith(V + "Total Host Walltime: the host walltime from when the first query")
    assert lines[i + 8].startswith(V + "Latency: the summation of H2D Latency, GPU Compute Time, and D2H Latency.")
    assert lines[-1] == P


def _bound_traces():
    """Timed queries where copies and enqueue dominate compute (0.1 ms), two streams."""
    out = []
    for i in range(4):
        h = 1.0 * i
        out.append(Trace(i % 2, h, h + 0.5, h, h + 0.25, h + 0.25, h + 0.375, h + 0.375, h + 0.625))
    return out


def test_golden_bound_warnings(capsys):
    out = _render(performance_report(_bound_traces(), 0.0, 10, [50], inf_streams=2), capsys)
    assert P + "Warmup completed 0 queries over 0 ms" in out.out
    assert P + "Trace averages of 10 runs:\n" + P + "\n" + P + "=== Performance summary ===" in out.out
    assert P + ("GPU Compute Time: min = 0.125 ms, max = 0.125 ms, mean = 0.125 ms, median = 0.125 ms, "
                "percentile(50%) = 0.125 ms") in out.out
    assert out.err == (
        f"{W}* Throughput may be bound by Enqueue Time rather than GPU Compute and the GPU may be under-utilized.\n"
        f"{W}  If not already in use, --useCudaGraph (utilize CUDA graphs where possible) may increase the "
        "throughput.\n"
        f"{W}* Throughput may be bound by host-to-device transfers for the inputs rather than GPU Compute and the "
        "GPU may be under-utilized.\n"
        f"{W}  Add --noDataTransfers flag to disable data transfers.\n"
        f"{W}* Throughput may be bound by device-to-host transfers for the outputs rather than GPU Compute and the "
        "GPU may be under-utilized.\n"
        f"{W}  Add --noDataTransfers flag to disable data transfers.\n"
        f"{W}* Multiple inference streams are used. Latencies may not be accurate since inferences may run in  "
        "parallel. Please use \"Throughput\" as the performance metric instead.\n")


def test_host_timing_skips_enqueue_warning(capsys):
    out = _render(performance_report(_bound_traces(), 0.0, 10, [50], host_timing=True), capsys)
    assert "Enqueue Time rather than GPU Compute" not in out.err
    assert "host-to-device" in out.err


def test_profiler_in_run_suppresses_summary(capsys):
    out = _render(performance_report(_traces(), 1.0, 5, [90], profiler_in_run=True), capsys)
    assert out.out == (f"{P}Warmup completed 1 queries over 1 ms\n{P}Timing trace has 10 queries over 0.0205 s\n"
                       f"{P}The e2e network timing is not reported since it is inaccurate due to the extra "
                       "synchronizations when the profiler is enabled.\n"
                       f"{P}To show e2e network timing report, add --separateProfileRun to profile layer timing in "
                       "a separate run or remove --dumpProfile to disable the profiler.\n")


def test_partial_group_dropped_and_long_trace_omitted():
    t = [Timing(1.0, 0.0, 2.0, 0.0)] * 7
    assert len(trace_details(t, 3)) == 3 + 2  # 7 queries in groups of 3: the partial group is not printed
    long = [Timing(0.5, 0.0, 1.0, 0.0)] * 405
    lines = trace_details(long, 1)
    assert lines.count("... Omitting 5 lines") == 1
    assert len(lines) == 3 + 200 + 1 + 201  # first 200, the marker, then from index N - 200 - 1 to the end
    assert lines[3] == "Average on 1 runs - GPU latency: 1 ms - Host latency: 1 ms (enqueue 0.5 ms)"
