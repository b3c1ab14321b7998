"""Launching stored cubins through the CUDA driver API (NVIDIA's cuda-bindings): module load from
memory, function lookup, dynamic shared memory over 48 KB, cuLaunchKernel with a pre-packed
argument buffer. Needs neither Triton nor a compiler; imported only on CUDA."""
from __future__ import annotations

import ctypes
import struct
import threading

import torch

from .cubin import SCALARS, Binary

_STATE = threading.local()


def _driver():
    from cuda.bindings import driver  # the gpu extra of pyproject: cuda-bindings
    return driver


def _check(res):
    """The value(s) of a cuda-bindings call; RuntimeError naming the CUDA error otherwise."""
    err, *vals = res if isinstance(res, tuple) else (res,)
    if int(err) != 0:
        d = _driver()
        _, name = d.cuGetErrorName(err)
        raise RuntimeError(f"CUDA driver error {name.decode() if name else int(err)}")
    return vals[0] if len(vals) == 1 else vals


def ensure_context(device_index: int) -> None:
    """Make the device's primary context current on this thread (torch uses the same one)."""
    have = getattr(_STATE, "ctx", None)
    if have == device_index:
        return
    d = _driver()
    ctx = _check(d.cuCtxGetCurrent())
    if not int(ctx):
        torch.cuda.init()
        dev = _check(d.cuDeviceGet(device_index))
        _check(d.cuCtxSetCurrent(_check(d.cuDevicePrimaryCtxRetain(dev))))
    _STATE.ctx = device_index


def _bf16_bits(x: float) -> int:
    return torch.tensor([x], dtype=torch.bfloat16).view(torch.int16).item() & 0xFFFF


def arg_layout(binary: Binary):
    """How a launch's arguments are packed: (slots, struct format, field offsets, bytes).

    slots: (index of the argument in the call, struct code, Triton type) per runtime parameter, in
    order; the format adds Triton 3.6's two trailing scratch pointers (global, profile). Offsets
    follow C alignment (struct's native mode), as the kernel's parameter block expects."""
    slots = [(i, "Q" if t.startswith("*") else SCALARS[t], t) for i, (n, t) in enumerate(binary.params)
             if t != "constexpr"]
    codes = "".join(c for _, c, _ in slots) + "QQ"
    offsets = [struct.calcsize("@" + codes[:i + 1]) - struct.calcsize("@" + c) for i, c in enumerate(codes)]
    return slots, "@" + codes, offsets, struct.calcsize("@" + codes)


class Launcher:
    """One cubin loaded on one device; `launch(grid, call, stream)` packs the call's arguments and
    enqueues the kernel."""

    def __init__(self, binary: Binary, device_index: int):
        ensure_context(device_index)
        d = _driver()
        self.b, self.device_index = binary, device_index
        self.module = _check(d.cuModuleLoadData(binary.cubin))
        self.fn = _check(d.cuModuleGetFunction(self.module, binary.name.encode()))
        if binary.shared > 49152:  # dynamic shared memory beyond 48 KB is opt-in per function
            dev = _check(d.cuDeviceGet(device_index))
            optin = _check(d.cuDeviceGetAttribute(
                d.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, dev))
            static = _check(d.cuFuncGetAttribute(d.CUfunction_attribute.CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES,
                                                  self.fn))
            _check(d.cuFuncSetAttribute(self.fn, d.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                        optin - static))
        self.names = [n for n, _ in binary.params]
        self.slots, self.fmt, self.offsets, self.size = arg_layout(binary)
        self.block = 32 * binary.num_warps
        self._local = threading.local()

    def _buffers(self):
        """This thread's argument buffer and pointer array (the driver copies them at launch)."""
        bufs = getattr(self._local, "bufs", None)
        if bufs is None:
            data = ctypes.create_string_buffer(max(self.size, 8))
            base = ctypes.addressof(data)
            ptrs = (ctypes.c_void_p * len(self.offsets))(*[base + o for o in self.offsets])
            bufs = self._local.bufs = (data, ptrs, ctypes.addressof(ptrs))
        return bufs

    def values(self, call: list, grid_size: int, stream) -> tuple:
        """The packed values of one launch (scratch allocated on `stream` when the kernel needs it)."""
        vals = []
        for i, _, t in self.slots:
            a = call[i]
            if t.startswith("*"):
                vals.append(0 if a is None else a.data_ptr())
            elif t == "bf16":
                vals.append(_bf16_bits(float(a)))
            else:
                vals.append(a)
        keep = []
        for size, align in (self.b.global_scratch, self.b.profile_scratch):
            if size > 0:
                t = torch.empty(grid_size * size + align, dtype=torch.uint8, device=f"cuda:{self.device_index}")
                keep.append(t)
                vals.append((t.data_ptr() + align - 1) // align * align)
            else:
                vals.append(0)
        return vals, keep

    def launch(self, grid, call: list, stream: int) -> None:
        """Enqueue one launch on the CUDA stream handle `stream`."""
        gx, gy, gz = (tuple(grid) + (1, 1))[:3]
        if gx * gy * gz == 0:
            return
        ensure_context(self.device_index)
        vals, keep = self.values(call, gx * gy * gz, stream)
        data, _, params = self._buffers()
        struct.pack_into(self.fmt, data, 0, *vals)
        rec = getattr(_STATE, "rec", None)
        if rec is not None:
            rec.add(self, (gx, gy, gz), data.raw, [v for (_, _, t), v in zip(self.slots, vals) if t.startswith("*")])
        _check(_driver().cuLaunchKernel(self.fn, gx, gy, gz, self.block, 1, 1, self.b.shared, stream, params, 0))
        del keep  # the caching allocator reuses scratch only after this stream's work (stream order)


class Store:
    """An engine's compiled kernels ({(key, spec): Binary}); each is loaded per device at first use."""

    def __init__(self, binaries: dict):
        self.binaries = binaries
        self.loaded: dict = {}
        self._lock = threading.Lock()

    def launcher(self, key: str, spec: str, device_index: int):
        """The Launcher of (key, spec) on a device, or None when the engine has no such cubin."""
        lk = self.loaded.get((key, spec, device_index))
        if lk is None:
            b = self.binaries.get((key, spec))
            if b is None:
                return None
            with self._lock:
                lk = self.loaded.get((key, spec, device_index))
                if lk is None:
                    lk = self.loaded[(key, spec, device_index)] = Launcher(b, device_index)
        return lk


_ACTIVE = threading.local()


class active:
    """Context manager: launches on this thread use `store`'s cubins (the executing engine's)."""

    def __init__(self, store):
        self.store = store

    def __enter__(self):
        self.prev = getattr(_ACTIVE, "store", None)
        _ACTIVE.store = self.store

    def __exit__(self, *exc):
        _ACTIVE.store = self.prev


def current_store():
    """The store of the engine executing on this thread (None outside an execution)."""
    return getattr(_ACTIVE, "store", None)


class Recording:
    """The driver launches one kernel call made (see `recording`): pre-bound for replay when every
    launch was a stored cubin whose pointers all fall inside the call's own tensors."""

    def __init__(self):
        self.entries, self.ok = [], True

    def add(self, lk: Launcher, grid, data, ptrs) -> None:
        if any(size > 0 for size, _ in (lk.b.global_scratch, lk.b.profile_scratch)):
            self.ok = False  # per-launch scratch memory: not replayable as is
        self.entries.append((lk, grid, bytes(data[:lk.size]), ptrs))

    def prebound(self, tensors):
        """A Prebound replaying the recorded launches, or None when they may not be replayed (a
        pointer outside `tensors`' storages: a temporary or a runner-held workspace; or no launch)."""
        if not self.ok or not self.entries:
            return None
        ranges = [(t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()) for t in tensors if t is not None]
        for _, _, _, ptrs in self.entries:
            if not all(p == 0 or any(b <= p < b + n for b, n in ranges) for p in ptrs):
                return None
        return Prebound([(lk, grid, data) for lk, grid, data, _ in self.entries])


class Prebound:
    """Fixed driver launches (function, grid, packed argument buffer): replaying them is one
    cuLaunchKernel each, with no Python of the kernel's runner (called through ctypes with every
    argument pre-converted: ~1 µs of host time per launch)."""

    def __init__(self, entries):
        self.launches, self.fast = [], []
        for lk, (gx, gy, gz), data in entries:
            buf = ctypes.create_string_buffer(data, max(len(data), 8))
            base = ctypes.addressof(buf)
            ptrs = (ctypes.c_void_p * len(lk.offsets))(*[base + o for o in lk.offsets])
            self.launches.append((lk.fn, gx, gy, gz, lk.block, lk.b.shared, ctypes.addressof(ptrs), buf, ptrs))
            u = ctypes.c_uint
            self.fast.append((ctypes.c_void_p(int(lk.fn or 0)), u(gx), u(gy), u(gz), u(lk.block), u(1), u(1),
                              u(lk.b.shared), ctypes.c_void_p(ctypes.addressof(ptrs))))
        self.launch_kernel = None

    def __call__(self, stream: int) -> None:
        launch, s = self.launch_kernel, ctypes.c_void_p(stream)
        if launch is None:
            launch = self.launch_kernel = libcuda().cuLaunchKernel
        for fn, gx, gy, gz, bx, by, bz, shared, params in self.fast:
            err = launch(fn, gx, gy, gz, bx, by, bz, shared, s, params, None)
            if err:
                _check((_driver().CUresult(err),))


_LIBCUDA = None


def libcuda():
    """The CUDA driver library through ctypes, for the two hot calls of pre-bound launches
    (cuLaunchKernel, cuGraphLaunch): cuda-bindings' wrappers convert their arguments per call."""
    global _LIBCUDA
    if _LIBCUDA is None:
        lib = ctypes.CDLL("libcuda.so.1")
        lib.cuLaunchKernel.restype = ctypes.c_int
        lib.cuGraphLaunch.restype = ctypes.c_int
        _LIBCUDA = lib
    return _LIBCUDA


class recording:
    """Context manager: the driver launches made on this thread inside are noted (yields a Recording)."""

    def __enter__(self):
        self.prev = getattr(_STATE, "rec", None)
        _STATE.rec = rec = Recording()
        return rec

    def __exit__(self, *exc):
        _STATE.rec = self.prev


def untracked_launch() -> None:
    """A launch the driver does not make (Triton JIT) happened: an open recording is not replayable."""
    rec = getattr(_STATE, "rec", None)
    if rec is not None:
        rec.ok = False
