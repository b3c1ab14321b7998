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
import weakref
from collections import OrderedDict

import numpy as np
import torch

from .. import dtypes
from ..errors import ShapeError, TensorforgeError
from ..kernels import driver, make_kernel
from . import execplan, graph_run, memory, steps
from . import streams as st
from .allocator import ContextMemory
from .nvtx import wrap_plan
from .binding import _as_tensor, _bind_symbols, check_values
from .context_io import ContextIO, _locked
from .memory import lifetimes as _lifetimes
from .layer_graphs import LayerGraphs
from .dynamic import deliver_outputs, graph_prefix, tail_kernels
from .shapes import eval_shape, eval_value

GRAPH_CACHE_SIZE = 8
__all__ = ["ExecutionContext", "_bind_symbols", "_lifetimes", "GRAPH_CACHE_SIZE"]


class ExecutionContext(ContextIO):
    """Per-request state for one engine: shapes, bindings, activation arena, streams, CUDA graphs.

    Contexts share the engine's weights. Thread safety: every method holds the context's lock, so
    threads sharing one context are serialized and `infer` (bind, run, copy the outputs out) is
    atomic; a sequence of low-level calls (set_input_shape, set_tensor_address, execute_async) is
    not, so give each thread its own context (and stream) for those. Contexts used one after the
    other may share one activation arena (`device_memory` / `set_device_memory`). allocator: where
    the context's memory comes from (runtime.allocator); nvtx: one NVTX range per layer launch."""

    def __init__(self, engine, use_cuda_graph: bool = False, graph_cache_size: int = GRAPH_CACHE_SIZE,
                 device_memory: torch.Tensor | None = None, allocate_memory: bool = True, allocator=None,
                 nvtx: bool = False, layer_graphs: bool = True):
        self._lock = threading.RLock()
        self.engine = engine
        self.plan = p = engine.plan
        self.device = engine.device
        self.profiler = None
        self.use_cuda_graph = use_cuda_graph
        self.graph_cache_size = graph_cache_size
        self.profile_index = 0
        self._kernels = tail_kernels(p, {lay.name: make_kernel(lay, p.opset, self.device) for lay in p.layers},
                                     self.device)  # dynamic-tail layers read host-computed values on the device
        self._shape_inputs = [n for n in p.inputs if p.tensors[n].sym is not None]
        self._shapes: dict[str, tuple] = {}
        for n in p.inputs:
            spec = p.tensors[n].shape
            if all(isinstance(d, int) for d in spec):
                self._shapes[n] = tuple(spec)
        self._bound: dict[str, object] = {}
        self._allocators: dict = {}  # output name -> output allocator (outputs sized at run time)
        self._owned: dict[str, torch.Tensor] = {}
        self._arena = None
        self._prepared_key = None
        self._graphs: OrderedDict = OrderedDict()
        self._graph_pool = None  # the memory pool all of this context's CUDA graphs share (graph_run)
        self._plans: OrderedDict = OrderedDict()  # LRU: shape-set key -> (ExecPlan, symbol env)
        self._valid: set = set()  # keys of plans that ran once (outputs checked)
        self._external_memory = device_memory is not None or not allocate_memory
        self._mem = ContextMemory(allocator, self.device)  # arena and I/O copies; given back at deletion
        weakref.finalize(self, self._mem.release)
        self._nvtx = bool(nvtx)
        if device_memory is not None:
            self.set_device_memory(device_memory)
        # a user allocator sees every activation: kernel results are copied into its arena
        self._kernel_alloc = memory.kernel_allocated(p) if allocator is None else set()
        self._lifetimes = _lifetimes(p, self._kernel_alloc)
        self._tf32 = bool(p.meta.get("tf32", False))
        self._ss = st.StreamSet(self.device) if self.device.type == "cuda" else None
        # eager path: library layers replayed from per-layer CUDA graphs (runtime.layer_graphs)
        self.layer_graphs = LayerGraphs(self.device) if self.device.type == "cuda" and layer_graphs else None
        self._consumed_event = None
        self._xp = None  # the ExecPlan of the prepared shape set
        self._bound_launches = None  # per launch of _xp: its pre-bound driver launches (CUDA)
        self._last = None  # slot list of the last run
        self._env = {}
        self._arena_ptr = None
        self.arena_bytes = 0
        self.replans = 0

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
        entry = self._plans.get(key)
        if entry is not None:  # a recent shape set: reuse its plan
            self._xp, self._env, self._bound_launches = entry
            self._arena_ptr = None if self._arena is None else self._arena.untyped_storage().data_ptr()
            self.arena_bytes = self._xp.arena_bytes
            self._plans.move_to_end(key)
            self._prepared_key = key
            return
        vals = dict(key[2])
        check_values(self.plan, self.profile_index, vals)
        self._env = _bind_symbols(self.plan, self._shapes, vals)
        slots = self._initial_slots()
        self._xp = execplan.build(self.plan, self._kernels, slots, self.device, self.device.type == "cuda",
                                  self.arena_bytes, self._const_copier(key))
        if self._nvtx:  # chosen once per plan, no per-layer check when off; no pre-bound replays then
            self._xp = wrap_plan(self._xp)
        self._prepared_key = key
        self.replans += 1
        self._bound_launches = None if self.device.type != "cuda" or self._nvtx else steps.Bound(len(self._xp.launches))
        self._plans[key] = (self._xp, self._env, self._bound_launches)
        while len(self._plans) > self.graph_cache_size:
            self._drop_oldest_plan()

    @property
    def exec_plan(self):
        """The ExecPlan of the current shape set (None before the first inference)."""
        return self._xp

    @property
    def _slots(self) -> dict:
        """{tensor name: tensor} of the last run (or of the plan before any run)."""
        xp = self._xp
        return dict(zip(xp.names, self._last if self._last is not None and len(self._last) == len(xp.names)
                        else xp.initial))

    def _initial_slots(self) -> dict:
        """Weights, shape tensors, bound I/O and arena views of the current shape set."""
        p, env = self.plan, self._env
        slots: dict = {}
        for name, t in p.tensors.items():
            if t.kind == "weight":
                slots[name] = self.engine.weights[name]
            elif t.kind == "shape":
                vals = [eval_value(v, env, t.dtype) for v in t.sym]  # float shape values keep fractions
                slots[name] = torch.tensor(vals, dtype=dtypes.to_torch(t.dtype)).reshape(eval_shape(t.shape, env))
        for n in p.inputs:  # sequence / optional inputs are host objects, bound as given
            slots[n] = self._bound[n] if _container(p.tensors[n].dtype) else self._binding(n, self._shapes[n])
        for n in p.outputs:
            shp = None if _container(p.tensors[n].dtype) else self._shape_of(n)
            slots[n] = self._binding(n, shp) if shp is not None else None
        self._plan_arena(slots)
        return slots

    def _check_planned(self, layer, name, r):
        """A kernel-allocated output must have the planned shape and dtype (data-dependent: any shape)."""
        t = self.plan.tensors.get(name)
        if t is None or t.dynamic:
            return
        shp = self._shape_of(name)
        if r.dtype != dtypes.to_torch(t.dtype) or (shp is not None and tuple(r.shape) != tuple(shp)):
            raise TensorforgeError(f"layer '{layer}': output '{name}' computed as {r.dtype}{list(r.shape)}, "
                                   f"planned {t.dtype}{list(shp or t.shape)} (shape inference bug)")

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
            self._mem.give(self._arena)  # the new one: for the max profile shapes (direct: kernels allocate the rest)
            floor = p.meta.get("arena_bytes", p.device_memory_size) if self._kernel_alloc else p.device_memory_size
            self._arena = self._mem.take(max(total, floor, 1))
        for b in bufs:
            dt = dtypes.to_torch(p.tensors[b.name].dtype)
            off = offsets[b.name]
            slots[b.name] = self._arena[off:off + b.size].view(dt).view(self._shape_of(b.name))
        self.arena_bytes = total
        self._arena_ptr = None if self._arena is None else self._arena.untyped_storage().data_ptr()

    # ---- execution ---------------------------------------------------------------------------------
    @_locked
    def execute_async(self, stream=None) -> bool:
        """Enqueue one inference on `stream` (CUDA) or run it (CPU). Returns True."""
        if self.device.type == "cuda":
            stream = stream or torch.cuda.current_stream(self.device)
            # TF32 is a math mode of cuBLAS/cuDNN: set it from the build config before enqueueing
            torch.backends.cuda.matmul.allow_tf32 = self._tf32
            torch.backends.cudnn.allow_tf32 = self._tf32
            with torch.cuda.stream(stream), driver.active(self.engine.kernel_store):
                self._prepare()  # allocations (arena, device copies) are ordered on this stream
                if torch.cuda.is_current_stream_capturing():  # a caller captures this enqueue
                    self._run(stream, capturing=True)
                elif self.use_cuda_graph and self.profiler is None and graph_prefix(self.plan, self._xp) > 0:
                    graph_run.run(self, stream)  # data-dependent layers: only the static prefix is a graph
                else:
                    self._run(stream)
                if self._allocators:
                    deliver_outputs(self.plan, self._allocators, self._slots)
        else:
            self._prepare()
            self._run(None)
            if self._allocators:
                deliver_outputs(self.plan, self._allocators, self._slots)
        return True

    def _run(self, stream, capturing=False, stop=None):
        key = self._prepared_key
        slots, marks = steps.run(self._xp, stream, self._ss, None if capturing else self._consumed_event,
                                 self.profiler, key in self._valid, self._arena_ptr, self._check_planned,
                                 self._bound_launches, stop=stop,
                                 layer_graphs=None if capturing else self.layer_graphs)
        self._last = slots
        self._valid.add(key)
        if marks is not None:
            self._report(marks)

    def _report(self, marks):
        if self.device.type == "cuda":
            marks[-1].synchronize()
            times = [a.elapsed_time(b) for a, b in zip(marks, marks[1:])]
        else:
            times = [(b - a) * 1e3 for a, b in zip(marks, marks[1:])]
        for L, ms in zip(self._xp.launches, times):
            self.profiler.report_layer_time(L.name, ms)

    # ---- convenience -------------------------------------------------------------------------------
    @_locked
    def infer(self, feed: dict) -> dict:
        """Run once on host or device data; returns {output name: tensor} (copies, on the engine device)."""
        p = self.plan
        unknown = set(feed) - set(p.inputs)
        if unknown:
            raise TensorforgeError(f"unknown input(s) {sorted(unknown)}; engine inputs: {p.inputs}")
        for n in p.inputs:
            if n not in feed:
                raise TensorforgeError(f"missing input '{n}'")
            if _container(p.tensors[n].dtype):  # a sequence / optional: a host object
                self._shapes[n] = (len(feed[n]) if feed[n] is not None else 0,)
                self._bound[n] = feed[n]
                continue
            t = _as_tensor(n, feed[n], p.tensors[n].dtype)
            self.set_input_shape(n, tuple(t.shape))
            dev = torch.device("cpu") if n in self._shape_inputs else self.device
            own = self._owned.get(n)
            if own is None or own.shape != t.shape:
                own = self._owned[n] = self._own(own, t.shape, t.dtype, dev)
            own.copy_(t)
            self.set_tensor_address(n, own)
        env = _bind_symbols(p, self._shapes, self._values())
        for n in p.outputs:
            try:
                if _container(p.tensors[n].dtype):  # host objects: the layer returns them
                    raise KeyError(n)
                shp = eval_shape(p.tensors[n].shape, env)
            except (NameError, KeyError):
                self._bound.pop(n, None)
                continue
            own = self._owned.get(n)
            if own is None or tuple(own.shape) != shp:
                own = self._owned[n] = self._own(own, shp, dtypes.to_torch(p.tensors[n].dtype), self.device)
            self.set_tensor_address(n, own)
        self.execute_async()
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()
        last = self._slots
        return {n: last[n].clone() if last[n] is not None else None for n in p.outputs}


def _container(dtype: str) -> bool:
    """Sequence / optional values: python objects (ops.sequence.TensorSeq, None), never tensors."""
    return dtype.startswith(("seq(", "opt("))

