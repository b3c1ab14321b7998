"""forgeexec's memory lines (trtexec's `Total ... Memory: N bytes`, the context's memory size, peak GPU
memory and host RSS after the run) and NVTX ranges per layer with --profilingVerbosity=detailed."""
from __future__ import annotations

import re
from types import SimpleNamespace

import torch

import tensorforge as tf
from tensorforge.cli.forgeexec import memory
from tensorforge.cli.forgeexec.log import fmt
from tensorforge.runtime import nvtx
from tests.cli.forgeexec_helpers import FAST


def _lines(out: str, prefix: str) -> list[str]:
    return [ln.split("] [I] ", 1)[1] for ln in out.splitlines() if "] [I] " + prefix in ln]


def test_cpu_run_prints_host_memory_lines(cli, tiny_onnx, tmp_path):
    path = tmp_path / "tiny.engine"
    rc, out, _ = cli(f"--onnx={tiny_onnx}", f"--saveEngine={path}", *FAST)
    assert rc == 0
    eng = tf.Engine.load(path)
    dms = eng.device_memory_size
    assert dms > 0  # the default (direct) activation memory used to report 0
    weights = (4 * 3 * 3 * 3 + 4) * 4  # conv weight and bias, float32
    host = " (host memory: the engine runs on the CPU)"
    assert [ln for ln in _lines(out, "Total ") if " Memory: " in ln] == [
        "Total Host Persistent Memory: 0 bytes (constants read on the host)",
        f"Total Activation Memory: {dms} bytes{host}", f"Total Weights Memory: {weights} bytes{host}"]
    assert _lines(out, "Created execution context") == [
        f"Created execution context with host memory size: {fmt(dms / 2 ** 20)} MiB"]
    rss, = _lines(out, "Host memory (RSS)")
    m = re.fullmatch(r"Host memory \(RSS\): ([\d.e+]+) MiB now, peak ([\d.e+]+) MiB \(process\): the engine runs "
                     r"on the CPU, so this is its memory \(no GPU memory used\)", rss)
    assert m and 0 < float(m[1]) <= float(m[2]), rss
    assert "Peak GPU memory" not in out and "Device Persistent" not in out
    rc, out, _ = cli(f"--loadEngine={path}", *FAST)  # a loaded engine gets the same lines
    assert rc == 0 and f"Total Activation Memory: {dms} bytes{host}" in out
    assert _lines(out, "[MemUsageChange]") == ["[MemUsageChange] tensorforge-managed allocation in engine "
                                               "deserialization: CPU +0, GPU +0, now: CPU 0, GPU 0 (MiB)"]


def test_gpu_lines_from_a_cuda_engine(monkeypatch):
    spec = lambda host: SimpleNamespace(kind="weight", host=host)  # noqa: E731
    eng = SimpleNamespace(device=torch.device("cuda"), artifacts=b"\0" * 1000, device_memory_size=3 * 2 ** 20,
                          plan=SimpleNamespace(device_memory_size=3 * 2 ** 20,
                                               tensors={"w": spec(False), "shape": spec(True)}),
                          weights={"w": torch.zeros(256), "shape": torch.zeros(4, dtype=torch.int64)})
    assert memory.engine_lines(eng) == ["Total Host Persistent Memory: 32 bytes (constants read on the host)",
                                        "Total Device Persistent Memory: 1000 bytes",
                                        f"Total Activation Memory: {3 * 2 ** 20} bytes",
                                        "Total Weights Memory: 1024 bytes"]
    assert memory.context_line(eng) == "Created execution context with device memory size: 3 MiB"
    eng.weights = {"w": torch.zeros(2 ** 20), "big": torch.zeros(3 * 2 ** 18, device="meta")}  # 4 MiB host, 3 GPU
    assert memory.deserialization_line(eng) == ("[MemUsageChange] tensorforge-managed allocation in engine "
                                                "deserialization: CPU +4, GPU +3, now: CPU 4, GPU 3 (MiB)")
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda d=None: 3 * 2 ** 19)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda d=None: 2 ** 21)
    gpu, host = memory.run_lines(torch.device("cuda"))
    assert gpu.startswith("Peak GPU memory during the run: 1.5 MiB allocated, 2 MiB reserved")
    assert host.startswith("Host memory (RSS): ") and host.endswith("(process)")


def test_detailed_verbosity_puts_one_nvtx_range_per_layer(cli, tiny_onnx, monkeypatch):
    events = []
    monkeypatch.setattr(nvtx, "api", lambda: (events.append, lambda: events.append(None)))
    rc, out, _ = cli(f"--onnx={tiny_onnx}", "--profilingVerbosity=detailed", "--iterations=4", "--duration=0",
                     "--warmUp=0", "--noDataTransfers")
    assert rc == 0 and "NVTX ranges per layer: on" in out
    names = [e for e in events if e is not None]
    assert names and events == [x for n in names for x in (n, None)]  # balanced, one range per launch
    assert "conv1 + relu1" in names
    events.clear()
    rc, out, _ = cli(f"--onnx={tiny_onnx}", *FAST)
    assert rc == 0 and "NVTX" not in out and events == []  # off by default


def test_detailed_verbosity_without_nvtx_says_so(cli, tiny_onnx, monkeypatch):
    monkeypatch.setattr(nvtx, "api", lambda: None)
    rc, out, err = cli(f"--onnx={tiny_onnx}", "--profilingVerbosity=detailed", *FAST)
    assert rc == 0 and "NVTX is not available here" in out + err
