"""--monitor: GPU clocks, power, temperature, utilization and memory sampled through NVML (the
`pynvml` module of nvidia-ml-py, imported only when asked) on a background thread while the
benchmark runs; min/mean/max, throughput per watt, and a warning when clocks throttle."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

CPU_LINE = "--monitor: nothing to monitor on the CPU (no GPU clocks, power or temperature to sample)."
# NVML clock-event (throttle) reasons that slow a benchmark down; idle, application-clock and display
# settings are not slowdowns caused by the run
THROTTLE = {0x4: "SW power cap", 0x8: "HW slowdown", 0x10: "sync boost", 0x20: "SW thermal slowdown",
            0x40: "HW thermal slowdown", 0x80: "HW power brake slowdown"}
FIELDS = (("sm_mhz", "SM clock", "MHz"), ("mem_mhz", "Memory clock", "MHz"), ("power_w", "Power", "W"),
          ("temp_c", "Temperature", "C"), ("util_gpu", "GPU utilization", "%"),
          ("util_mem", "Memory controller utilization", "%"), ("mem_used_mib", "Memory used", "MiB"))


@dataclass
class Sample:
    """One NVML reading."""

    t: float
    sm_mhz: float
    mem_mhz: float
    power_w: float
    temp_c: float
    util_gpu: float
    util_mem: float
    mem_used_mib: float
    reasons: int


def load_nvml():
    """The initialized pynvml module, or (None, why not)."""
    try:
        import pynvml
        pynvml.nvmlInit()
        return pynvml, ""
    except Exception as e:  # not installed, no driver, no permission: the run goes on without it
        return None, f"{type(e).__name__}: {e}"


def device_handle(nvml, device):
    """The NVML handle of a torch CUDA device: by PCI address (NVML numbers every GPU, CUDA only the
    visible ones), else by index."""
    import torch
    idx = device.index if device.index is not None else torch.cuda.current_device()
    p = torch.cuda.get_device_properties(idx)
    if all(hasattr(p, f) for f in ("pci_domain_id", "pci_bus_id", "pci_device_id")):
        try:
            return nvml.nvmlDeviceGetHandleByPciBusId(
                f"{p.pci_domain_id:08x}:{p.pci_bus_id:02x}:{p.pci_device_id:02x}.0")
        except Exception:  # an address this NVML does not know: fall back to the index
            pass
    return nvml.nvmlDeviceGetHandleByIndex(idx)


def _reasons(nvml, h) -> int:
    """Current clock-event reasons (the newer name first)."""
    fn = getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or \
        nvml.nvmlDeviceGetCurrentClocksThrottleReasons
    return int(fn(h))


class GpuMonitor:
    """Samples one GPU every `interval_s` seconds between start() and stop()."""

    def __init__(self, nvml, handle, interval_s: float = 0.05, clock=time.perf_counter):
        self.nvml, self.h, self.interval, self.clock = nvml, handle, interval_s, clock
        self.samples: list[Sample] = []
        self.error = ""
        self._stop = threading.Event()
        self._thread = None

    def read(self) -> Sample:
        """One reading of every quantity."""
        n, h = self.nvml, self.h
        util, mem = n.nvmlDeviceGetUtilizationRates(h), n.nvmlDeviceGetMemoryInfo(h)
        return Sample(self.clock(), n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_SM),
                      n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_MEM), n.nvmlDeviceGetPowerUsage(h) / 1000.0,
                      n.nvmlDeviceGetTemperature(h, n.NVML_TEMPERATURE_GPU), util.gpu, util.memory,
                      mem.used / 2**20, _reasons(n, h))

    def _loop(self) -> None:
        """Thread body: sample until stopped; an NVML error ends sampling and is reported."""
        while True:
            try:
                self.samples.append(self.read())
            except Exception as e:  # reported in the summary, never fails the benchmark
                self.error = f"{type(e).__name__}: {e}"
                return
            if self._stop.wait(self.interval):
                return

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="forgeexec-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def max_sm_clock(self):
        """The GPU's maximum SM clock (MHz), or None."""
        try:
            return self.nvml.nvmlDeviceGetMaxClockInfo(self.h, self.nvml.NVML_CLOCK_SM)
        except Exception:  # not every GPU/driver reports it
            return None


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def summary(samples: list[Sample], qps: float | None, max_sm=None, interval_s: float = 0.05) -> list:
    """The monitor's report as (severity, line) pairs."""
    if not samples:
        return [("W", "--monitor: no NVML samples were taken during the run.")]
    out = [("I", ""), ("I", f"=== GPU monitor ({len(samples)} samples, every {interval_s * 1000:g} ms) ===")]
    for key, label, unit in FIELDS:
        v = [getattr(s, key) for s in samples]
        out.append(("I", f"{label}: min = {_fmt(min(v))} {unit}, mean = {_fmt(sum(v) / len(v))} {unit}, "
                         f"max = {_fmt(max(v))} {unit}"))
    power = sum(s.power_w for s in samples) / len(samples)
    if qps is not None and power > 0:
        out.append(("I", f"Throughput per watt: {_fmt(qps / power)} qps/W ({_fmt(qps)} qps at a mean "
                         f"{_fmt(power)} W)"))
    out += [("W", line) for line in throttle_warnings(samples, max_sm)]
    return out


def throttle_warnings(samples: list[Sample], max_sm=None) -> list[str]:
    """Warnings for clock-event reasons seen during the run, with how often and the SM clock range."""
    seen = {}
    for s in samples:
        for bit, name in THROTTLE.items():
            if s.reasons & bit:
                seen[name] = seen.get(name, 0) + 1
    if not seen:
        return []
    sm = [s.sm_mhz for s in samples]
    top = f"{_fmt(max_sm)} MHz supported" if max_sm else f"max {_fmt(max(sm))} MHz seen"
    what = ", ".join(f"{name} ({n} of {len(samples)} samples)" for name, n in seen.items())
    return [f"* GPU clocks were throttled during the run: {what}.",
            f"  SM clock ranged {_fmt(min(sm))}-{_fmt(max(sm))} MHz ({top}); timings may be lower than the "
            "GPU can sustain. Check cooling and power limits, or lock clocks (nvidia-smi -lgc)."]


def start(opts, device, log):
    """A started monitor for --monitor on a CUDA device, else None (with one line saying why)."""
    if not getattr(opts, "monitor", False):
        return None
    if getattr(device, "type", "cpu") != "cuda":
        log.info(CPU_LINE)
        return None
    nvml, why = load_nvml()
    if nvml is None:
        log.warn(f"--monitor: NVML is not available ({why}); pip install 'tensorforge[monitor]' (nvidia-ml-py).")
        return None
    mon = GpuMonitor(nvml, device_handle(nvml, device))
    mon.start()
    return mon


def finish(mon, qps, log) -> None:
    """Stop the monitor and log its summary."""
    if mon is None:
        return
    mon.stop()
    for sev, line in summary(mon.samples, qps, mon.max_sm_clock(), mon.interval):
        log.log(sev, line)
    if mon.error:
        log.warn(f"--monitor: sampling stopped early: {mon.error}")
