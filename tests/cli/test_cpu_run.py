"""CPU runs of forgeexec: the report says CPU (no GPU-clock advice) and torch runs with --cpuThreads
threads (1 by default), restored afterwards."""
from __future__ import annotations

import torch

from tensorforge.cli.forgeexec.report import performance_report
from tensorforge.cli.forgeexec.stats import Trace
from tests.cli.forgeexec_helpers import FAST


def _unstable():
    """Ten queries with compute 1 ms, one with 50 ms: coefficient of variance far above 2.5 %."""
    return [Trace(0, 2.0 * i, 2.0 * i, 2.0 * i, 2.0 * i, 2.0 * i, 2.0 * i + (50.0 if i == 5 else 1.0),
                  2.0 * i + 1.0, 2.0 * i + 1.0) for i in range(11)]


def test_cpu_report_says_cpu_and_gives_no_gpu_clock_advice():
    text = "\n".join(line for _, line in performance_report(_unstable(), 0.0, 5, [90], host_timing=True))
    assert "CPU Compute Time: min = " in text and "Total CPU Compute Time: " in text
    assert "Average on 5 runs - CPU latency: " in text and "GPU" not in text
    assert "* CPU compute time is unstable" in text and "--cpuThreads=1" in text
    gpu = "\n".join(line for _, line in performance_report(_unstable(), 0.0, 5, [90]))
    assert "GPU Compute Time: min = " in gpu and "locking GPU clock frequency" in gpu


def test_cpu_threads_default_one_and_restored(cli, tiny_onnx, monkeypatch):
    calls, real = [], torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (calls.append(n), real(n)))
    before = torch.get_num_threads()
    rc, out, _ = cli(f"--onnx={tiny_onnx}", *FAST)
    assert rc == 0 and "CPU run: torch uses 1 thread(s) (the default on the CPU" in out
    assert calls == [1, before] and torch.get_num_threads() == before
    calls.clear()
    rc, out, _ = cli(f"--onnx={tiny_onnx}", "--cpuThreads=2", *FAST)
    assert rc == 0 and "CPU run: torch uses 2 thread(s)\n" in out and calls == [2, before]
    rc, out, err = cli(f"--onnx={tiny_onnx}", "--cpuThreads=0", *FAST)
    assert rc == 1 and "--cpuThreads must be at least 1" in out + err
