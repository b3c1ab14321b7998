"""User allocators for an ExecutionContext (TensorRT's IGpuAllocator role) and a tracking allocator.

Protocol: an allocator is any object with
    allocate(nbytes: int, device: torch.device, stream) -> torch.Tensor
        a contiguous tensor (any dtype, viewed as bytes) of at least `nbytes` bytes on `device`;
        stream: the torch.cuda.Stream the memory is first used on (None on the CPU).
    deallocate(buffer: torch.Tensor, device: torch.device, stream) -> None
        `buffer` (exactly what allocate returned) is no longer used by the context. Work enqueued on
        `stream` before this call may still read it: free it in stream order (as torch's caching
        allocator does) or synchronize first.
A context given one takes its activation arena (every activation, kernel results included: they are
copied in, so the allocator sees all of engine.device_memory_size) and its own I/O copies (`infer`)
from it, and gives each buffer back when it replaces it and when the context is deleted."""
from __future__ import annotations

import threading

import torch


class DefaultAllocator:
    """torch's allocator (the caching allocator on CUDA): what a context uses without a user allocator."""

    def allocate(self, nbytes: int, device: torch.device, stream=None) -> torch.Tensor:
        return torch.empty(max(int(nbytes), 1), dtype=torch.uint8, device=device)

    def deallocate(self, buffer: torch.Tensor, device: torch.device, stream=None) -> None:
        """Dropping the last reference frees it (in the order of the stream that allocated it)."""


class TrackingAllocator:
    """Wraps an allocator (default: DefaultAllocator) and counts what goes through it: live_bytes,
    peak_bytes (requested bytes), allocations and deallocations; thread-safe."""

    def __init__(self, inner=None):
        self.inner = inner if inner is not None else DefaultAllocator()
        self._lock = threading.Lock()
        self._live: dict = {}  # id(buffer) -> (buffer, requested bytes)
        self.live_bytes = self.peak_bytes = 0
        self.allocations = self.deallocations = 0
        self.sizes: list = []  # requested bytes of every allocation, in order

    def allocate(self, nbytes: int, device: torch.device, stream=None) -> torch.Tensor:
        buf = self.inner.allocate(nbytes, device, stream)
        with self._lock:
            self._live[id(buf)] = (buf, int(nbytes))
            self.live_bytes += int(nbytes)
            self.peak_bytes = max(self.peak_bytes, self.live_bytes)
            self.allocations += 1
            self.sizes.append(int(nbytes))
        return buf

    def deallocate(self, buffer: torch.Tensor, device: torch.device, stream=None) -> None:
        with self._lock:
            entry = self._live.pop(id(buffer), None)
            if entry is None:
                raise ValueError("TrackingAllocator.deallocate: buffer was not allocated here (or freed twice)")
            self.live_bytes -= entry[1]
            self.deallocations += 1
        self.inner.deallocate(buffer, device, stream)

    def reset_peak(self) -> None:
        """Start a new peak from the bytes live now."""
        with self._lock:
            self.peak_bytes = self.live_bytes


class ContextMemory:
    """The buffers one context took from its allocator; `release` gives them all back (at deletion)."""

    def __init__(self, allocator, device: torch.device):
        self.user = allocator is not None  # False: torch's allocator, which the context may bypass
        self.allocator = allocator if allocator is not None else DefaultAllocator()
        self.device = device
        self._held: dict = {}  # start address -> buffer (a pool may hand out slices of one storage)
        self._tagged: dict = {}  # tag (a plan's shape-set key) -> the tensors held for it

    def copy_for(self, tag, t: torch.Tensor) -> torch.Tensor:
        """A copy of host tensor t in a buffer of its own, held for `tag` until give_tagged(tag)."""
        d = self.tensor(tuple(t.shape), t.dtype)
        d.copy_(t)
        self._tagged.setdefault(tag, []).append(d)
        return d

    def give_tagged(self, tag) -> None:
        """Give back every buffer held for `tag`."""
        for t in self._tagged.pop(tag, ()):
            self.give(t)

    def _stream(self):
        return torch.cuda.current_stream(self.device) if self.device.type == "cuda" else None

    def take(self, nbytes: int) -> torch.Tensor:
        """A uint8 buffer of exactly `nbytes` (>= 1) bytes from the allocator, on the current stream."""
        n = max(int(nbytes), 1)
        buf = self.allocator.allocate(n, self.device, self._stream())
        if not isinstance(buf, torch.Tensor) or buf.device.type != self.device.type or not buf.is_contiguous() \
                or buf.numel() * buf.element_size() < n:
            raise TypeError(f"allocator {type(self.allocator).__name__}.allocate({n}) must return a contiguous "
                            f"torch tensor of at least {n} bytes on {self.device}")
        self._held[buf.data_ptr()] = buf
        return buf.reshape(-1).view(torch.uint8)[:n]

    def give(self, view) -> None:
        """Give back the buffer behind `view` (a result of take); None and foreign tensors are ignored."""
        if view is None:
            return
        buf = self._held.pop(view.data_ptr(), None)
        if buf is not None:
            self.allocator.deallocate(buf, self.device, self._stream())

    def tensor(self, shape, dtype: torch.dtype) -> torch.Tensor:
        """An uninitialized tensor of `shape` and `dtype` in a buffer of its own."""
        n = 1
        for d in shape:
            n *= int(d)
        item = torch.empty((), dtype=dtype).element_size()
        return self.take(n * item)[:n * item].view(dtype).view(tuple(shape))

    def release(self) -> None:
        """Give every held buffer back (the context is being deleted: stream None, its work may be
        pending on the streams it ran on)."""
        held, self._held = self._held, {}
        for buf in held.values():
            try:
                self.allocator.deallocate(buf, self.device, None)
            except Exception:  # noqa: BLE001 - a finalizer must not raise; the allocator's error is its own
                pass
