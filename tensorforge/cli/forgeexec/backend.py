"""Timing backends: CUDA (streams, events, pinned memory, graphs) and CPU (host clock, synchronous)."""
from __future__ import annotations

import time

import torch


class CpuEvent:
    """A host-clock 'event': the time (s) at which it was recorded."""

    __slots__ = ("t",)

    def __init__(self):
        self.t = 0.0


class CpuBackend:
    """Everything runs synchronously on the host: events read the host clock when recorded."""

    host_timing = True
    name = "cpu"

    def __init__(self, clock=time.perf_counter, sleep=time.sleep):
        self.now, self._sleep = clock, sleep

    def stream(self):
        """No streams on the CPU."""
        return None

    def event(self) -> CpuEvent:
        """A new host event."""
        return CpuEvent()

    def record(self, ev: CpuEvent, stream) -> None:
        """Stamp the event with the host clock."""
        ev.t = self.now()

    def wait_event(self, stream, ev) -> None:
        """Nothing to wait for: work is synchronous."""

    def sync(self, ev) -> None:
        """Nothing to wait for: work is synchronous."""

    def elapsed_ms(self, start: CpuEvent, end: CpuEvent) -> float:
        """Milliseconds from start to end."""
        return (end.t - start.t) * 1000.0

    def sleep_on_stream(self, stream, ms: float) -> None:
        """Sleep on the host (the CPU has no device queue to delay)."""
        self._sleep(ms / 1000.0)

    def idle(self, ms: float) -> None:
        """Host sleep between iterations."""
        self._sleep(ms / 1000.0)

    def copy(self, dst, src, stream) -> None:
        """Synchronous copy."""
        dst.copy_(src)

    def synchronize(self, stream=None) -> None:
        """Nothing to wait for."""

    def host_buffer(self, shape, dtype) -> torch.Tensor:
        """Plain host memory."""
        return torch.empty(shape, dtype=dtype)

    def capture(self, fn, stream):
        """CUDA graphs do not exist on the CPU."""
        raise RuntimeError("CUDA graphs need a CUDA device")

    def launch(self, graph, stream) -> None:
        """Never called on the CPU."""
        raise RuntimeError("CUDA graphs need a CUDA device")


class CudaBackend:
    """CUDA streams and timing events; blocking-sync events unless spin-wait is on."""

    host_timing = False
    name = "cuda"

    def __init__(self, device: torch.device, spin: bool = False, clock=time.perf_counter):
        self.device, self.spin, self.now = device, spin, clock
        props = torch.cuda.get_device_properties(device)
        khz = getattr(props, "clock_rate", 0) or 1_400_000  # kHz == cycles per ms
        self._cycles_per_ms = int(khz)

    def stream(self) -> torch.cuda.Stream:
        """A new non-default stream."""
        return torch.cuda.Stream(self.device)

    def event(self) -> torch.cuda.Event:
        """A timing event (blocking sync unless spinning)."""
        return torch.cuda.Event(enable_timing=True, blocking=not self.spin)

    def record(self, ev, stream) -> None:
        """Record ev on stream."""
        ev.record(stream)

    def wait_event(self, stream, ev) -> None:
        """Make stream wait for ev."""
        stream.wait_event(ev)

    def sync(self, ev) -> None:
        """Wait for ev: spin on query() with --useSpinWait, else block."""
        if self.spin:
            while not ev.query():
                pass
        else:
            ev.synchronize()

    def elapsed_ms(self, start, end) -> float:
        """cudaEventElapsedTime."""
        return start.elapsed_time(end)

    def sleep_on_stream(self, stream, ms: float) -> None:
        """Delay the stream by about ms (a GPU-side spin kernel)."""
        with torch.cuda.stream(stream):
            torch.cuda._sleep(int(ms * self._cycles_per_ms))

    def idle(self, ms: float) -> None:
        """Host sleep between iterations."""
        time.sleep(ms / 1000.0)

    def copy(self, dst, src, stream) -> None:
        """Asynchronous copy on stream."""
        with torch.cuda.stream(stream):
            dst.copy_(src, non_blocking=True)

    def synchronize(self, stream=None) -> None:
        """Wait for stream (or the device)."""
        (stream or torch.cuda).synchronize()

    def host_buffer(self, shape, dtype) -> torch.Tensor:
        """Pinned host memory."""
        return torch.empty(shape, dtype=dtype, pin_memory=True)

    def capture(self, fn, stream):
        """Capture fn on stream into a CUDA graph; raise when capture fails."""
        from ...runtime.graphs import capture
        return capture(fn, stream)

    def launch(self, graph, stream) -> None:
        """Replay a captured graph on stream."""
        with torch.cuda.stream(stream):
            graph.replay()

    def clear_error(self) -> None:
        """Drop a sticky error left by a failed capture, if any."""
        try:
            torch.cuda.synchronize(self.device)
        except RuntimeError:
            pass
