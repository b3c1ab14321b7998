"""The inference loop of trtexec (sampleInference.cpp): Iteration per stream, depth-2 slots, enqueue-ahead."""
from __future__ import annotations

import threading
from dataclasses import dataclass

from . import api
from .stats import F32, Trace

IN_S, IN_E, COMP_S, COMP_E, OUT_S, OUT_E = range(6)


@dataclass
class LoopConfig:
    """What bounds the loop: at least `iterations` queries AND `duration` s after `warmup_ms`."""

    iterations: int = 10
    duration_s: float = 3.0
    warmup_ms: float = 200.0
    idle_ms: float = 0.0
    sleep_ms: float = 0.0
    skip_transfers: bool = False
    threads: bool = False
    progress: object = None  # callable(fraction done): the progress line on a terminal


class Iteration:
    """One execution context with input/compute/output streams and `depth` slots of six events each."""

    def __init__(self, index: int, ctx, buffers, backend, depth: int, skip_transfers: bool):
        self.index, self.ctx, self.buffers, self.backend = index, ctx, buffers, backend
        self.depth, self.skip = depth, skip_transfers
        self.s_in, self.s_comp, self.s_out = backend.stream(), backend.stream(), backend.stream()
        self.events = [[backend.event() for _ in range(6)] for _ in range(depth)]
        self.enq = [[0.0, 0.0] for _ in range(depth)]
        self.active = [False] * depth
        self.next = 0
        self.graph = None

    def enqueue(self) -> None:
        """One enqueue: a graph launch when captured, else execute_async."""
        if self.graph is not None:
            self.backend.launch(self.graph, self.s_comp)
        else:
            api.execute(self.ctx, self.s_comp)

    def capture_graph(self, warn, info) -> bool:
        """One normal enqueue, then capture one enqueue on the compute stream; warn and go on if it fails."""
        self.buffers.upload()
        api.execute(self.ctx, self.s_comp)
        self.backend.synchronize(self.s_comp)
        try:
            self.graph = self.backend.capture(lambda: api.execute(self.ctx, self.s_comp), self.s_comp)
        except Exception:  # any capture failure means: run without a graph, as trtexec does
            self.graph = None
            getattr(self.backend, "clear_error", lambda: None)()
            warn("The built engine contains operations that are not permitted under CUDA graph capture mode.")
            warn("CUDA graph capture failed. The inference will be launched without using CUDA graph.")
            return False
        info(f"Successfully captured CUDA graph for inference stream {self.index}. Use `nsys profile "
             "--cuda-graph-trace=node` to see the kernels inside the graph.")
        return True

    def wait(self, gpu_start) -> None:
        """All three streams wait for the gpuStart event."""
        for s in (self.s_in, self.s_comp, self.s_out):
            self.backend.wait_event(s, gpu_start)

    def _rec(self, which: int, stream) -> None:
        """Record event `which` of the current slot on stream."""
        self.backend.record(self.events[self.next][which], stream)

    def query(self) -> bool:
        """Enqueue one query into the current slot if it is idle, then switch slots."""
        if self.active[self.next]:
            return True
        b, ev = self.backend, self.events[self.next]
        if not self.skip:
            self._rec(IN_S, self.s_in)
            self.buffers.h2d(self.s_in)
            self._rec(IN_E, self.s_in)
            b.wait_event(self.s_comp, ev[IN_E])
        self._rec(COMP_S, self.s_comp)
        self.enq[self.next][0] = b.now()
        self.enqueue()
        self.enq[self.next][1] = b.now()
        self._rec(COMP_E, self.s_comp)
        if not self.skip:
            b.wait_event(self.s_out, ev[COMP_E])
            self._rec(OUT_S, self.s_out)
            self.buffers.d2h(self.s_out)
            self._rec(OUT_E, self.s_out)
        self.active[self.next] = True
        self._move_next()
        return True

    def _move_next(self) -> None:
        """Toggle between the slots (always 0 with depth 1)."""
        self.next = self.depth - 1 - self.next

    def sync(self, cpu_start: float, gpu_start, traces: list) -> float:
        """Wait for the current slot, add its trace and return its compute start (ms); 0 if idle."""
        if not self.active[self.next]:
            return 0.0
        ev = self.events[self.next]
        self.backend.sync(ev[COMP_E] if self.skip else ev[OUT_E])
        traces.append(self._trace(cpu_start, gpu_start))
        self.active[self.next] = False
        return float(F32(self.backend.elapsed_ms(gpu_start, ev[COMP_S])))

    def sync_all(self, cpu_start: float, gpu_start, traces: list) -> None:
        """Sync every slot."""
        for _ in range(self.depth):
            self.sync(cpu_start, gpu_start, traces)
            self._move_next()

    def _trace(self, cpu_start: float, gpu_start) -> Trace:
        """The trace of the current slot (H2D/D2H collapse onto compute when transfers are off)."""
        ev, el = self.events[self.next], self.backend.elapsed_ms
        cs, ce = el(gpu_start, ev[COMP_S]), el(gpu_start, ev[COMP_E])
        if self.skip:
            ins, ine, outs, oute = cs, cs, ce, ce
        else:
            ins, ine, outs, oute = (el(gpu_start, ev[i]) for i in (IN_S, IN_E, OUT_S, OUT_E))
        e0, e1 = self.enq[self.next]
        return Trace(self.index, (e0 - cpu_start) * 1000.0, (e1 - cpu_start) * 1000.0, ins, ine, cs, ce, outs, oute)


def inference_loop(its: list[Iteration], backend, cfg: LoopConfig, cpu_start, gpu_start, traces: list) -> None:
    """Loop while i < iterations + skipped or duration < warm-up + duration; warm-up by compute start."""
    duration_ms, skip, i = 0.0, 0, 0
    max_ms = cfg.duration_s * 1000.0 + cfg.warmup_ms
    try:
        while cfg.duration_s == -1 or i < cfg.iterations + skip or duration_ms < max_ms:
            i += 1
            for it in its:
                it.query()
            for it in its:
                duration_ms = max(duration_ms, it.sync(cpu_start, gpu_start, traces))
            if cfg.progress is not None and cfg.duration_s != -1:  # done when both bounds are met
                cfg.progress(min(i / (cfg.iterations + skip or 1), duration_ms / max_ms if max_ms > 0 else 1.0))
            if duration_ms < cfg.warmup_ms:
                if duration_ms:
                    skip += 1
                continue
            if cfg.idle_ms:
                backend.idle(cfg.idle_ms)
    except KeyboardInterrupt:
        if cfg.duration_s != -1:
            raise
    for it in its:
        it.sync_all(cpu_start, gpu_start, traces)


def run_inference(its: list[Iteration], backend, cfg: LoopConfig) -> list[Trace]:
    """Start clocks, delay the device by --sleepTime, run the loop(s) and return traces sorted by h2dStart."""
    main = backend.stream()
    gpu_start = backend.event()
    cpu_start = backend.now()
    if cfg.sleep_ms:
        backend.sleep_on_stream(main, cfg.sleep_ms)
    backend.record(gpu_start, main)
    for it in its:
        it.wait(gpu_start)
    traces: list[Trace] = []
    if cfg.threads and len(its) > 1:
        per = [[] for _ in its]
        errors: list[BaseException] = []
        threads = [threading.Thread(target=_thread_main, args=([it], backend, cfg, cpu_start, gpu_start, t, errors))
                   for it, t in zip(its, per)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        if errors:
            raise errors[0]
        for t in per:
            traces += t
    else:
        inference_loop(its, backend, cfg, cpu_start, gpu_start, traces)
    traces.sort(key=lambda t: t.h2dStart)
    return traces


def _thread_main(its, backend, cfg, cpu_start, gpu_start, traces, errors) -> None:
    """Thread body for --threads: one loop per stream; errors are handed back to the main thread."""
    try:
        inference_loop(its, backend, cfg, cpu_start, gpu_start, traces)
    except BaseException as e:  # re-raised in the main thread
        errors.append(e)
