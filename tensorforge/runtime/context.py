"""ExecutionContext: owns activation memory, binds I/O, runs the layer list, captures CUDA graphs."""
from __future__ import annotations

import time
from collections import OrderedDict

import numpy as np
import torch

from .. import dtypes
from ..errors import ShapeError, TensorforgeError
from ..kernels import make_kernel
from . import memory
from .shapes import eval_shape, symbols_of

GRAPH_CACHE_SIZE = 8


class _DevicePtr:
    """Wraps a raw device pointer so torch.as_tensor can view it (CUDA array interface)."""

    def __init__(self, ptr, shape, dtype: torch.dtype):
        self.__cuda_array_interface__ = {
            "shape": tuple(shape), "typestr": np.dtype(torch.empty((), dtype=dtype).numpy().dtype).str
            if dtype != torch.bfloat16 else "<V2", "data": (int(ptr), False), "version": 3}


class ExecutionContext:
    """Per-request state for one engine: shapes, bindings, activation arena, CUDA graphs."""

    def __init__(self, engine, use_cuda_graph: bool = False, graph_cache_size: int = GRAPH_CACHE_SIZE):
        self.engine = engine
        self.plan = p = engine.plan
        self.device = engine.device
        self.profiler = None
        self.use_cuda_graph = use_cuda_graph
        self.graph_cache_size = graph_cache_size
        self.profile_index = 0
        self._kernels = {lay.name: make_kernel(lay, p.opset, self.device) for lay in p.layers}
        self._shapes: dict[str, tuple] = {}
        for n in p.inputs:
            spec = p.tensors[n].shape
            if all(isinstance(d, int) for d in spec):
                self._shapes[n] = tuple(spec)
        self._bound: dict[str, object] = {}
        self._owned: dict[str, torch.Tensor] = {}
        self._arena = None
        self._prepared_key = None
        self._graphs: OrderedDict = OrderedDict()
        self._lifetimes = _lifetimes(p)
        self._tf32 = bool(p.meta.get("tf32", False))
        self.replans = 0

    # ---- shapes and profiles -----------------------------------------------------------------
    def set_optimization_profile(self, index: int, stream=None) -> None:
        if not 0 <= index < max(1, self.engine.num_profiles):
            raise ShapeError(f"optimization profile {index} does not exist (engine has "
                             f"{self.engine.num_profiles})")
        self.profile_index = index
        self._prepared_key = None

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
        if p.profiles and not p.meta.get("implicit_profile"):
            mn, _, mx = p.profiles[self.profile_index].shapes.get(name, (spec, spec, spec))
            if any(not (a <= d <= b) for d, a, b in zip(shape, mn, mx) if isinstance(a, int)):
                raise ShapeError(f"input '{name}': shape {_fmt(shape)} is outside optimization profile "
                                 f"{self.profile_index} (min {_fmt(mn)}, max {_fmt(mx)})")
        self._shapes[name] = shape

    def get_tensor_shape(self, name: str) -> tuple:
        if name in self._shapes:
            return self._shapes[name]
        if name not in self.plan.tensors:
            raise TensorforgeError(f"'{name}' is not a tensor of this engine")
        missing = [n for n in self.plan.inputs if n not in self._shapes]
        if missing:
            raise ShapeError(f"input shape not set for {', '.join(missing)} (call set_input_shape)")
        try:
            return eval_shape(self.plan.tensors[name].shape, _bind_symbols(self.plan, self._shapes))
        except (NameError, KeyError):  # data-dependent: -1 until an inference has run
            t = self._slots.get(name) if getattr(self, "_slots", None) else None
            return tuple(t.shape) if t is not None else tuple(
                d if isinstance(d, int) else -1 for d in self.plan.tensors[name].shape)

    @property
    def all_shapes_specified(self) -> bool:
        return all(n in self._shapes for n in self.plan.inputs)

    # ---- bindings ----------------------------------------------------------------------------
    def set_tensor_address(self, name: str, tensor_or_ptr) -> None:
        if name not in self.plan.inputs and name not in self.plan.outputs:
            raise TensorforgeError(f"'{name}' is not an input or output of this engine")
        if isinstance(tensor_or_ptr, torch.Tensor):
            if tensor_or_ptr.device.type != self.device.type:
                raise TensorforgeError(f"tensor '{name}' is on {tensor_or_ptr.device}, engine runs on "
                                       f"{self.device}")
        elif not isinstance(tensor_or_ptr, int):
            raise TensorforgeError(f"set_tensor_address('{name}'): expected a torch tensor or an int pointer")
        self._bound[name] = tensor_or_ptr

    def get_tensor_address(self, name):
        t = self._bound.get(name)
        return t.data_ptr() if isinstance(t, torch.Tensor) else t

    def _binding(self, name, shape):
        """The bound tensor for an I/O name, checked against the current shape."""
        b = self._bound.get(name)
        dt = dtypes.to_torch(self.plan.tensors[name].dtype)
        if b is None:
            raise TensorforgeError(f"no address set for '{name}' (call set_tensor_address)")
        if isinstance(b, int):
            if self.device.type == "cuda":
                return torch.as_tensor(_DevicePtr(b, shape, dt), device=self.device)
            import ctypes
            n = int(np.prod(shape)) * dtypes.itemsize(self.plan.tensors[name].dtype)
            buf = (ctypes.c_char * max(n, 1)).from_address(b)
            return torch.frombuffer(buf, dtype=dt, count=int(np.prod(shape))).view(shape)
        if b.dtype != dt:
            raise TensorforgeError(f"tensor '{name}' has dtype {b.dtype}, engine expects {dt}")
        if shape is not None and tuple(b.shape) != tuple(shape):
            if b.numel() == int(np.prod(shape)) and b.is_contiguous():
                return b.view(shape)
            raise ShapeError(f"tensor '{name}' has shape {list(b.shape)}, engine expects {list(shape)}")
        return b

    # ---- planning (per shape set) ----------------------------------------------------------------
    def _key(self):
        return (tuple(self._shapes.get(n) for n in self.plan.inputs),
                tuple((n, self.get_tensor_address(n)) for n in sorted(self._bound)))

    def _prepare(self) -> None:
        key = self._key()
        if key == self._prepared_key:
            return
        missing = [n for n in self.plan.inputs if n not in self._shapes]
        if missing:
            raise ShapeError(f"input shape not set for {', '.join(missing)} (call set_input_shape)")
        self._env = _bind_symbols(self.plan, self._shapes)
        self._build_slots()
        self._prepared_key = key
        self.replans += 1

    def _shape_of(self, name):
        try:
            return eval_shape(self.plan.tensors[name].shape, self._env)
        except (NameError, KeyError):
            return None  # data-dependent: known only after the producing layer runs

    def _build_slots(self):
        p, dev = self.plan, self.device
        slots: dict[str, torch.Tensor | None] = {}
        for name, t in p.tensors.items():
            if t.kind == "weight":
                slots[name] = self.engine.weights[name]
            elif t.kind == "shape":
                vals = [v if isinstance(v, int) else eval_shape([v], self._env)[0] for v in t.sym]
                slots[name] = torch.tensor(vals, dtype=dtypes.to_torch(t.dtype)).reshape(
                    eval_shape(t.shape, self._env))
        for n in p.inputs:
            slots[n] = self._binding(n, self._shapes[n])
        for n in p.outputs:
            shp = self._shape_of(n)
            slots[n] = self._binding(n, shp) if shp is not None else None
        bufs = []
        for name, (first, last) in self._lifetimes.items():
            shp = self._shape_of(name)
            if shp is None:
                continue
            size = int(np.prod(shp)) * dtypes.itemsize(p.tensors[name].dtype)
            bufs.append(memory.Buffer(name, size, first, last))
        offsets, total = memory.plan(bufs)
        if self._arena is None or self._arena.numel() < total:
            self._arena = torch.empty(max(total, 1), dtype=torch.uint8, device=dev)
        for b in bufs:
            dt = dtypes.to_torch(p.tensors[b.name].dtype)
            shp = self._shape_of(b.name)
            slots[b.name] = self._arena[offsets[b.name]:offsets[b.name] + b.size].view(dt).view(shp)
        self._steps = []
        self.arena_bytes = total
        for lay in p.layers:
            fn = self._kernels[lay.name]
            if lay.mode == "view" and all(slots.get(i) is not None for i in lay.inputs if i):
                res = fn([slots[i] if i else None for i in lay.inputs])
                slots[lay.outputs[0]] = res[0]
                continue
            outs = [slots.get(o) for o in lay.outputs]
            self._steps.append((lay.name, fn, list(lay.inputs), list(lay.outputs), outs, lay.mode == "view"))
        self._slots = slots
        self._validated = False
        self._has_dynamic = any(o is None for s in self._steps for o in s[4]) or any(s[5] for s in self._steps)

    # ---- execution ---------------------------------------------------------------------------------
    def execute_async(self, stream=None) -> bool:
        """Enqueue one inference on `stream` (CUDA) or run it (CPU). Returns True."""
        self._prepare()
        if self.device.type == "cuda":
            stream = stream or torch.cuda.current_stream(self.device)
            # TF32 is a math mode of cuBLAS/cuDNN: set it from the build config before enqueueing
            torch.backends.cuda.matmul.allow_tf32 = self._tf32
            torch.backends.cudnn.allow_tf32 = self._tf32
            with torch.cuda.stream(stream):
                if self.use_cuda_graph and not self._has_dynamic and self.profiler is None:
                    self._run_graph(stream)
                else:
                    self._run(stream)
        else:
            self._run(None)
        return True

    def _run(self, stream):
        slots = self._slots
        prof = self.profiler
        marks = []
        for name, fn, ins, outs_names, outs, is_view in self._steps:
            if prof is not None:
                marks.append(_mark(stream))
            res = fn([slots[i] if i else None for i in ins])
            for j, (o, r) in enumerate(zip(outs, res)):
                if o is None:
                    slots[outs_names[j]] = r
                else:
                    if not self._validated:
                        _check(name, outs_names[j], o, r)
                    o.copy_(r)
        self._validated = True
        if prof is not None:
            marks.append(_mark(stream))
            self._report(marks)

    def _report(self, marks):
        if self.device.type == "cuda":
            marks[-1].synchronize()
            times = [a.elapsed_time(b) for a, b in zip(marks, marks[1:])]
        else:
            times = [(b - a) * 1e3 for a, b in zip(marks, marks[1:])]
        for (name, *_), ms in zip(self._steps, times):
            self.profiler.report_layer_time(name, ms)

    def _run_graph(self, stream):
        key = self._prepared_key
        g = self._graphs.get(key)
        if g is None:
            self._run(stream)  # warm-up run outside capture (lazy init, validation)
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g, stream=stream):
                self._run(stream)
            self._graphs[key] = g
            while len(self._graphs) > self.graph_cache_size:
                self._graphs.popitem(last=False)
        else:
            self._graphs.move_to_end(key)
        g.replay()

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
            own = self._owned.get(n)
            if own is None or own.shape != t.shape:
                own = self._owned[n] = torch.empty(t.shape, dtype=t.dtype, device=self.device)
            own.copy_(t)
            self.set_tensor_address(n, own)
        env = _bind_symbols(p, self._shapes)
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


def _as_tensor(name, x, dtype_name):
    want = dtypes.to_torch(dtype_name)
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x) if np.ndim(x) else np.array(x))
    if t.dtype != want:
        if t.is_floating_point() != want.is_floating_point and want != torch.bool:
            raise TensorforgeError(f"input '{name}' has dtype {t.dtype}, engine expects {want}")
        t = t.to(want)
    return t


def _bind_symbols(plan, shapes) -> dict:
    env = {}
    for n in plan.inputs:
        for i, (d, s) in enumerate(zip(shapes[n], plan.tensors[n].shape)):
            if isinstance(s, int):
                continue
            names = symbols_of(s)
            if len(names) == 1 and s.strip() == next(iter(names)):
                sym = s.strip()
                if sym in env and env[sym] != d:
                    raise ShapeError(f"input '{n}' dim {i} is {d} but '{sym}' is {env[sym]} elsewhere")
                env[sym] = d
    return env


def _lifetimes(plan) -> dict:
    """{activation: (first step, last step)} with view aliases folded into their root buffer."""
    root = {}
    first, last = {}, {}
    for i, lay in enumerate(plan.layers):
        for n in lay.inputs:
            if n:
                last[root.get(n, n)] = i
        for o in lay.outputs:
            if lay.mode == "view" and lay.inputs and lay.inputs[0]:
                root[o] = root.get(lay.inputs[0], lay.inputs[0])
            else:
                first.setdefault(o, i)
                last.setdefault(o, i)
    out = {}
    for n, f in first.items():
        t = plan.tensors[n]
        if t.kind == "activation" and not t.dynamic:
            out[n] = (f, last.get(n, f))
    return out


def _mark(stream):
    if stream is None:
        return time.perf_counter()
    e = torch.cuda.Event(enable_timing=True)
    e.record(stream)
    return e


def _check(layer, name, o, r):
    if tuple(o.shape) != tuple(r.shape) or o.dtype != r.dtype:
        raise TensorforgeError(f"layer '{layer}': output '{name}' computed as {r.dtype}{list(r.shape)}, "
                               f"planned {o.dtype}{list(o.shape)} (shape inference bug)")


def _fmt(shape):
    return "x".join(str(d) for d in shape)
