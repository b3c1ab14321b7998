"""forgeexec --monitor with a fake NVML module: sampling, min/mean/max, qps per watt, throttling."""
from __future__ import annotations

import sys
import time
import types

import pytest

from tensorforge.cli.forgeexec import monitor
from tensorforge.cli.forgeexec.monitor import Sample, summary
from tests.cli.forgeexec_helpers import FAST


class FakeNvml(types.ModuleType):
    """pynvml's calls used by the monitor, reading from a list of (sm MHz, mW, reasons) tuples."""

    NVML_CLOCK_SM, NVML_CLOCK_MEM, NVML_TEMPERATURE_GPU = 1, 2, 0

    def __init__(self, readings):
        super().__init__("pynvml")
        self.readings, self.i, self.inited = readings, 0, False

    def _cur(self):
        return self.readings[min(self.i, len(self.readings) - 1)]

    def nvmlInit(self):
        self.inited = True

    def nvmlDeviceGetClockInfo(self, h, which):
        return self._cur()[0] if which == self.NVML_CLOCK_SM else 2619

    def nvmlDeviceGetPowerUsage(self, h):
        return self._cur()[1]

    def nvmlDeviceGetTemperature(self, h, which):
        return 60

    def nvmlDeviceGetUtilizationRates(self, h):
        return types.SimpleNamespace(gpu=97, memory=40)

    def nvmlDeviceGetMemoryInfo(self, h):
        return types.SimpleNamespace(used=3 * 2**30, total=141 * 2**30)

    def nvmlDeviceGetCurrentClocksEventReasons(self, h):
        r = self._cur()[2]
        self.i += 1  # the last call of one reading
        return r

    def nvmlDeviceGetMaxClockInfo(self, h, which):
        return 1980


def _s(sm, w, reasons=0):
    return Sample(0.0, sm, 2619, w, 60, 97, 40, 3072, reasons)


def test_summary_math():
    lines = [line for _, line in summary([_s(1980, 200), _s(1900, 300), _s(1940, 250)], qps=1000.0)]
    assert "SM clock: min = 1900 MHz, mean = 1940 MHz, max = 1980 MHz" in lines
    assert "Power: min = 200 W, mean = 250 W, max = 300 W" in lines
    assert "Throughput per watt: 4 qps/W (1000 qps at a mean 250 W)" in lines
    assert not [sev for sev, _ in summary([_s(1980, 200)], qps=1.0) if sev == "W"]


def test_throttle_warning_names_the_reasons():
    samples = [_s(1980, 690, 0x1), _s(1500, 700, 0x4), _s(1400, 700, 0x4 | 0x20)]
    warns = [line for sev, line in summary(samples, qps=None, max_sm=1980) if sev == "W"]
    assert warns[0] == ("* GPU clocks were throttled during the run: SW power cap (2 of 3 samples), "
                        "SW thermal slowdown (1 of 3 samples).")
    assert "SM clock ranged 1400-1980 MHz (1980 MHz supported)" in warns[1]
    # idle, application-clock and display settings are not throttling
    assert not monitor.throttle_warnings([_s(1980, 100, 0x1 | 0x2 | 0x100)])


def test_sampler_thread_reads_and_converts():
    nvml = FakeNvml([(1980, 250_000, 0)] * 3 + [(1600, 300_000, 0x40)])
    mon = monitor.GpuMonitor(nvml, handle=None, interval_s=0.001)
    mon.start()
    deadline = time.monotonic() + 30
    while nvml.i < 6 and time.monotonic() < deadline and not mon.error:
        time.sleep(0.001)
    mon.stop()
    assert len(mon.samples) >= 6 and mon.samples[0].power_w == 250.0 and mon.samples[0].mem_used_mib == 3072
    assert mon.samples[-1].sm_mhz == 1600 and monitor.throttle_warnings(mon.samples, mon.max_sm_clock())


def test_start_on_a_gpu_with_fake_nvml(monkeypatch):
    nvml = FakeNvml([(1980, 250_000, 0)])
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.setattr(monitor, "device_handle", lambda n, d: "handle")
    logged = []
    log = types.SimpleNamespace(info=lambda m: logged.append(("I", m)), warn=lambda m: logged.append(("W", m)),
                                log=lambda sev, m: logged.append((sev, m)))
    mon = monitor.start(types.SimpleNamespace(monitor=True), types.SimpleNamespace(type="cuda"), log)
    assert nvml.inited and mon is not None
    monitor.finish(mon, 500.0, log)
    assert ("I", "Throughput per watt: 2 qps/W (500 qps at a mean 250 W)") in logged


def test_missing_nvml_warns(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    warned = []
    log = types.SimpleNamespace(info=None, warn=warned.append)
    assert monitor.start(types.SimpleNamespace(monitor=True), types.SimpleNamespace(type="cuda"), log) is None
    assert "NVML is not available" in warned[0] and "tensorforge[monitor]" in warned[0]


def test_cpu_run_says_nothing_to_monitor(cli, tiny_onnx):
    rc, out, _ = cli(f"--onnx={tiny_onnx}", "--monitor", *FAST)
    assert rc == 0 and monitor.CPU_LINE in out and "=== GPU monitor" not in out
    rc, out, _ = cli(f"--onnx={tiny_onnx}", *FAST)
    assert monitor.CPU_LINE not in out


def test_device_handle_by_pci_address(monkeypatch):
    import torch
    props = types.SimpleNamespace(pci_domain_id=0, pci_bus_id=0x19, pci_device_id=0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: props)
    asked = []
    nvml = types.SimpleNamespace(nvmlDeviceGetHandleByPciBusId=lambda bus: asked.append(bus) or "h-pci",
                                 nvmlDeviceGetHandleByIndex=lambda i: f"h-{i}")
    assert monitor.device_handle(nvml, torch.device("cuda", 3)) == "h-pci" and asked == ["00000000:19:00.0"]
    nvml.nvmlDeviceGetHandleByPciBusId = lambda bus: (_ for _ in ()).throw(RuntimeError("unknown"))
    assert monitor.device_handle(nvml, torch.device("cuda", 3)) == "h-3"
