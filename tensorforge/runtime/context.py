"""ExecutionContext: owns activation memory, binds I/O, runs the layer list (on the main stream and
the engine's auxiliary streams), captures CUDA graphs per shape set.

Shape changes: the first inference after an input shape, shape-tensor value, address or profile
change re-plans (symbol binding, arena offsets, steps: counted in `replans`); later inferences with
the same key reuse that plan, and plans of recent keys are kept (LRU of graph_cache_size), so going
back to a recent shape set does not re-plan. With use_cuda_graph, a graph is captured per key (same
LRU): the first inference of a key runs eagerly (shapes resolved, outputs checked), then the graph
is captured; later inferences replay it. Capture never happens during that eager run.
"""
from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
import torch

from .. import dtypes
from ..errors import ShapeError, TensorforgeError
from ..kernels import make_kernel
from . import memory
from . import streams as st
from .binding import _as_tensor, _bind_symbols, _fmt, bound_tensor, check_values
from .memory import lifetimes as _lifetimes
from .dynamic import deliver
from .shapes import eval_shape
from .steps import build_steps, run_steps

GRAPH_CACHE_SIZE = 8
_CAPTURE_LOCK = threading.Lock()  # one capture at a time per process (threads each own a context)
_STATE = ("_env", "_slots", "_steps", "_step_streams", "_sched", "_has_dynamic", "_consumed_at",
          "_consumed_streams", "arena_bytes", "_release", "_arena_ptr")  # what build_steps sets: one plan per key
__all__ = ["ExecutionContext", "_bind_symbols", "_lifetimes", "GRAPH_CACHE_SIZE"]


class ExecutionContext:
    """Per-request state for one engine: shapes, bindings, activation arena, streams, CUDA graphs.

    Contexts share the engine's weights; use one context (and one stream) per thread. Contexts used
    one after the other may share one activation arena (`device_memory` / `set_device_memory`)."""

    def __init__(self, engine, use_cuda_graph: bool = False, graph_cache_size: int = GRAPH_CACHE_SIZE,
                 device_memory: torch.Tensor | None = None, allocate_memory: bool = True):
        self.engine = engine
        self.plan = p = engine.plan
        self.device = engine.device
        self.profiler = None
        self.use_cuda_graph = use_cuda_graph
        self.graph_cache_size = graph_cache_size
        self.profile_index = 0
        self._kernels = {lay.name: make_kernel(lay, p.opset, self.device) for lay in p.layers}
        self._shape_inputs = [n for n in p.inputs if p.tensors[n].sym is not None]
        self._shapes: dict[str, tuple] = {}
        for n in p.inputs:
            spec = p.tensors[n].shape
            if all(isinstance(d, int) for d in spec):
                self._shapes[n] = tuple(spec)
        self._bound: dict[str, object] = {}
        self._allocators: dict = {}  # output name -> output allocator (run-time-sized outputs)
        self._owned: dict[str, torch.Tensor] = {}
        self._arena = None
        self._prepared_key = None
        self._graphs: OrderedDict = OrderedDict()
        self._plans: OrderedDict = OrderedDict()
        self._external_memory = device_memory is not None or not allocate_memory
        if device_memory is not None:
            self.set_device_memory(device_memory)
        self._kernel_alloc = memory.kernel_allocated(p)
        self._lifetimes = _lifetimes(p, self._kernel_alloc)
        self._tf32 = bool(p.meta.get("tf32", False))
        self._ss = st.StreamSet(self.device) if self.device.type == "cuda" else None
        self._consumed_event = None
        self._slots = None
        self._arena_ptr = None
        self.replans = 0

    # ---- shapes and profiles -----------------------------------------------------------------
    def set_optimization_profile(self, index: int, stream=None) -> None:
        """Select profile `index`; input shapes outside it must be set again. Re-plans once."""
        if not 0 <= index < max(1, self.engine.num_profiles):
            raise ShapeError(f"optimization profile {index} does not exist (engine has "
                             f"{self.engine.num_profiles})")
        self.profile_index = index
        self._prepared_key = None
        for n, shp in list(self._shapes.items()):
            if self._outside(n, shp):
                del self._shapes[n]

    def _outside(self, name, shape) -> bool:
        p = self.plan
        if not p.profiles or p.meta.get("implicit_profile"):
            return False
        spec = p.tensors[name].shape
        mn, _, mx = p.profiles[self.profile_index].shapes.get(name, (spec, spec, spec))
        return any(not (a <= d <= b) for d, a, b in zip(shape, mn, mx) if isinstance(a, int))

    def set_input_shape(self, name: str, shape) -> None:
        p = self.plan
        if name not in p.inputs:
            raise ShapeError(f"'{name}' is not an input of this engine (inputs: {', '.join(p.inputs)})")
        shape = tuple(int(d) for d in shape)
        spec = p.tensors[name].shape
        if len(shape) != len(spec):
            raise ShapeError(f"input '{name}': rank {len(shape)} given, engine expects {len(spec)} "
                             f"({_fmt(spec)})")
        for i, (d, s) in enumerate(zip(shape, spec)):
            if isinstance(s, int) and d != s:
                raise ShapeError(f"input '{name}': dim {i} is {d}, engine requires {s} ({_fmt(spec)})")
            if d < 0:
                raise ShapeError(f"input '{name}': negative dim {d}")
        if self._outside(name, shape):
            mn, _, mx = p.profiles[self.profile_index].shapes[name]
            raise ShapeError(f"input '{name}': shape {_fmt(shape)} is outside optimization profile "
                             f"{self.profile_index} (min {_fmt(mn)}, max {_fmt(mx)})")
        self._shapes[name] = shape

    def set_shape_input(self, name: str, values) -> None:
        """Give the values of a shape-tensor input (kept in a host tensor owned by the context)."""
        if name not in self._shape_inputs:
            raise ShapeError(f"'{name}' is not a shape tensor input of this engine")
        t = torch.tensor([int(v) for v in np.asarray(values).reshape(-1)],
                         dtype=dtypes.to_torch(self.plan.tensors[name].dtype))
        shape = tuple(self.plan.tensors[name].shape)
        self._owned[name] = t.reshape(shape)
        self._bound[name] = self._owned[name]

    def _values(self) -> dict:
        """{shape input: tuple of values} read from the bound host tensors."""
        out = {}
        for n in self._shape_inputs:
            if n not in self._bound:
                raise ShapeError(f"values of shape tensor input '{n}' not set (bind a host tensor with "
                                 "set_tensor_address or call set_shape_input)")
            t = self._binding(n, tuple(self.plan.tensors[n].shape))
            out[n] = tuple(int(v) for v in t.reshape(-1).tolist())
        return out

    def get_tensor_shape(self, name: str) -> tuple:
        if name in self._shapes:
            return self._shapes[name]
        if name not in self.plan.tensors:
            raise TensorforgeError(f"'{name}' is not a tensor of this engine")
        missing = [n for n in self.plan.inputs if n not in self._shapes]
        if missing:
            raise ShapeError(f"input shape not set for {', '.join(missing)} (call set_input_shape)")
        try:
            return eval_shape(self.plan.tensors[name].shape, _bind_symbols(self.plan, self._shapes,
                                                                           self._values()))
        except (NameError, KeyError):  # data-dependent: -1 until an inference has run
            t = self._slots.get(name) if self._slots else None
            return tuple(t.shape) if t is not None else tuple(
                d if isinstance(d, int) else -1 for d in self.plan.tensors[name].shape)

    @property
    def all_shapes_specified(self) -> bool:
        return all(n in self._shapes for n in self.plan.inputs)

    # ---- bindings and memory ---------------------------------------------------------------------
    def set_tensor_address(self, name: str, tensor_or_ptr) -> None:
        """Bind an I/O tensor (or raw pointer); shape-tensor inputs must be in host memory."""
        if name not in self.plan.inputs and name not in self.plan.outputs:
            raise TensorforgeError(f"'{name}' is not an input or output of this engine")
        if isinstance(tensor_or_ptr, torch.Tensor):
            want = "cpu" if name in self._shape_inputs else self.device.type
            if tensor_or_ptr.device.type != want:
                raise TensorforgeError(f"tensor '{name}' is on {tensor_or_ptr.device}, engine expects it on "
                                       f"{want}" + (" (shape tensor input: host memory)" if want == "cpu" else ""))
        elif not isinstance(tensor_or_ptr, int):
            raise TensorforgeError(f"set_tensor_address('{name}'): expected a torch tensor or an int pointer")
        self._bound[name] = tensor_or_ptr

    def set_output_allocator(self, name: str, allocator) -> None:
        """Outputs sized at run time (data-dependent) are delivered to `allocator` (see
        runtime.dynamic.OutputAllocator) once their size is known; None removes it."""
        if name not in self.plan.outputs:
            raise TensorforgeError(f"'{name}' is not an output of this engine")
        if allocator is None:
            self._allocators.pop(name, None)
        else:
            self._allocators[name] = allocator

    def get_output_allocator(self, name: str):
        return self._allocators.get(name)

    def get_tensor_address(self, name):
        t = self._bound.get(name)
        return t.data_ptr() if isinstance(t, torch.Tensor) else t

    def set_device_memory(self, memory_: torch.Tensor) -> None:
        """Use `memory_` (>= engine.device_memory_size bytes on the engine device) as the arena."""
        if not isinstance(memory_, torch.Tensor) or memory_.device.type != self.device.type \
                or not memory_.is_contiguous():
            raise TensorforgeError(f"device memory must be a contiguous torch tensor on {self.device}")
        self._arena = memory_.reshape(-1).view(torch.uint8)
        self._external_memory = True
        self._forget_plans()

    def _forget_plans(self) -> None:
        """Drop cached plans and graphs (they point into the arena)."""
        self._prepared_key = None
        self._graphs.clear()
        self._plans.clear()

    @property
    def device_memory(self):
        return self._arena

    def _binding(self, name, shape):
        """The bound tensor for an I/O name, checked against the current shape."""
        if name not in self._bound:
            raise TensorforgeError(f"no address set for '{name}' (call set_tensor_address)")
        host = self.device.type == "cpu" or name in self._shape_inputs
        return bound_tensor(self.plan, name, self._bound[name], shape, None if host else self.device)

    # ---- input-consumed event ------------------------------------------------------------------------
    def set_input_consumed_event(self, event) -> None:
        """Event recorded once every layer reading a graph input has been enqueued (eager), or after
        the graph replay (CUDA graph). On the CPU an object with `set()` (threading.Event) is set."""
        self._consumed_event = event

    def get_input_consumed_event(self):
        return self._consumed_event

    # ---- planning (per shape set) ----------------------------------------------------------------
    def _key(self):
        return (self.profile_index, tuple(self._shapes.get(n) for n in self.plan.inputs),
                tuple(sorted(self._values().items())) if self._shape_inputs else (),
                tuple((n, self.get_tensor_address(n)) for n in sorted(self._bound)))

    def _prepare(self) -> None:
        missing = [n for n in self.plan.inputs if n not in self._shapes]
        if missing:
            raise ShapeError(f"input shape not set for {', '.join(missing)} (call set_input_shape)")
        key = self._key()
        if key == self._prepared_key:
            return
        if self._external_memory and self._arena is None:
            raise TensorforgeError("context has no device memory (call set_device_memory)")
        state = self._plans.get(key)
        if state is not None:  # a recent shape set: reuse its plan
            for k in _STATE:
                setattr(self, k, state[k])
            self._validated = state.get("_validated", False)
            self._plans.move_to_end(key)
            self._prepared_key = key
            return
        vals = dict(key[2])
        check_values(self.plan, self.profile_index, vals)
        self._env = _bind_symbols(self.plan, self._shapes, vals)
        build_steps(self)
        self._prepared_key = key
        self.replans += 1
        self._plans[key] = {k: getattr(self, k) for k in _STATE}
        while len(self._plans) > self.graph_cache_size:
            self._plans.popitem(last=False)

    def _shape_of(self, name):
        try:
            return eval_shape(self.plan.tensors[name].shape, self._env)
        except (NameError, KeyError):
            return None  # data-dependent: known only after the producing layer runs

    def _plan_arena(self, slots) -> None:
        """Offsets for this shape set in the arena (own arena grows; external must be big enough)."""
        p = self.plan
        bufs = []
        for name, (first, last) in self._lifetimes.items():
            shp = self._shape_of(name)
            if shp is not None:
                bufs.append(memory.Buffer(name, int(np.prod(shp)) * dtypes.itemsize(p.tensors[name].dtype),
                                          first, last))
        offsets, total = memory.plan(bufs)
        have = 0 if self._arena is None else self._arena.numel()
        if have < total:
            if self._external_memory:
                raise TensorforgeError(f"device memory too small: these shapes need {total} bytes, "
                                       f"{have} given (engine.device_memory_size = {p.device_memory_size})")
            self._forget_plans()  # cached plans and graphs point into the old arena
            self._arena = torch.empty(max(total, p.device_memory_size, 1), dtype=torch.uint8,
                                      device=self.device)
        for b in bufs:
            dt = dtypes.to_torch(p.tensors[b.name].dtype)
            off = offsets[b.name]
            slots[b.name] = self._arena[off:off + b.size].view(dt).view(self._shape_of(b.name))
        self.arena_bytes = total
        self._arena_ptr = None if self._arena is None else self._arena.untyped_storage().data_ptr()

    # ---- execution ---------------------------------------------------------------------------------
    def execute_async(self, stream=None) -> bool:
        """Enqueue one inference on `stream` (CUDA) or run it (CPU). Returns True."""
        if self.device.type == "cuda":
            stream = stream or torch.cuda.current_stream(self.device)
            # TF32 is a math mode of cuBLAS/cuDNN: set it from the build config before enqueueing
            torch.backends.cuda.matmul.allow_tf32 = self._tf32
            torch.backends.cudnn.allow_tf32 = self._tf32
            with torch.cuda.stream(stream):
                self._prepare()  # allocations (arena, device copies) are ordered on this stream
                if torch.cuda.is_current_stream_capturing():  # a caller captures this enqueue
                    self._run(stream, capturing=True)
                elif self.use_cuda_graph and not self._has_dynamic and self.profiler is None:
                    self._run_graph(stream)
                else:
                    self._run(stream)
        else:
            self._prepare()
            self._run(None)
        return True

    def _run(self, stream, capturing=False):
        run_steps(self, stream, None if capturing else self._consumed_event)
        for name, alloc in self._allocators.items():
            if self.plan.tensors[name].dynamic and self._slots.get(name) is not None:
                deliver(alloc, name, self._slots[name])
        state = self._plans.get(self._prepared_key)
        if state is not None:
            state["_validated"] = True

    def _run_graph(self, stream):
        key = self._prepared_key
        entry = self._graphs.get(key)
        if entry is None:
            self._run(stream)  # resolves shapes and validates outputs; never captured
            g = torch.cuda.CUDAGraph()
            cap = self._ss.stream("capture", stream)
            cap.wait_stream(stream)
            with _CAPTURE_LOCK, torch.cuda.graph(g, stream=cap, capture_error_mode="thread_local"):
                self._run(cap, capturing=True)
            stream.wait_stream(cap)
            self._graphs[key] = (g, self._slots, self._arena)  # keep what the graph points to alive
            while len(self._graphs) > self.graph_cache_size:
                self._graphs.popitem(last=False)
            return
        self._graphs.move_to_end(key)
        entry[0].replay()
        if self._consumed_event is not None:
            self._consumed_event.record(stream)

    def _report(self, marks):
        if self.device.type == "cuda":
            marks[-1].synchronize()
            times = [a.elapsed_time(b) for a, b in zip(marks, marks[1:])]
        else:
            times = [(b - a) * 1e3 for a, b in zip(marks, marks[1:])]
        for (name, *_), ms in zip(self._steps, times):
            self.profiler.report_layer_time(name, ms)

    # ---- convenience -------------------------------------------------------------------------------
    def infer(self, feed: dict) -> dict:
        """Run once on host or device data; returns {output name: tensor} (copies, on the engine device)."""
        p = self.plan
        unknown = set(feed) - set(p.inputs)
        if unknown:
            raise TensorforgeError(f"unknown input(s) {sorted(unknown)}; engine inputs: {p.inputs}")
        for n in p.inputs:
            if n not in feed:
                raise TensorforgeError(f"missing input '{n}'")
            t = _as_tensor(n, feed[n], p.tensors[n].dtype)
            self.set_input_shape(n, tuple(t.shape))
            dev = torch.device("cpu") if n in self._shape_inputs else self.device
            own = self._owned.get(n)
            if own is None or own.shape != t.shape:
                own = self._owned[n] = torch.empty(t.shape, dtype=t.dtype, device=dev)
            own.copy_(t)
            self.set_tensor_address(n, own)
        env = _bind_symbols(p, self._shapes, self._values())
        for n in p.outputs:
            try:
                shp = eval_shape(p.tensors[n].shape, env)
            except (NameError, KeyError):
                self._bound.pop(n, None)
                continue
            own = self._owned.get(n)
            if own is None or tuple(own.shape) != shp:
                own = self._owned[n] = torch.empty(shp, dtype=dtypes.to_torch(p.tensors[n].dtype),
                                                   device=self.device)
            self.set_tensor_address(n, own)
        self.execute_async()
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()
        return {n: self._slots[n].clone() for n in p.outputs}

