"""The ExecutionContext's inputs: shapes, optimization profile, shape-tensor values, bound addresses,
device memory and the input-consumed event (the ExecutionContext class mixes these in)."""
from __future__ import annotations

import functools

import numpy as np
import torch

from .. import dtypes
from ..errors import ShapeError, TensorforgeError
from .binding import _bind_symbols, _fmt, bound_tensor
from .shapes import eval_shape


def _locked(method):
    """Run `method` holding the context's (re-entrant) lock: threads sharing a context take turns."""
    @functools.wraps(method)
    def wrapper(self, *args, **kw):
        with self._lock:
            return method(self, *args, **kw)
    return wrapper


class ContextIO:
    """Shapes, profiles, bindings and memory of an execution context (state set in its __init__)."""

    # ---- shapes and profiles -----------------------------------------------------------------
    @_locked
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

    @_locked
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

    @_locked
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

    @_locked
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
            t = self._slots.get(name) if self._xp is not None else None
            return tuple(t.shape) if t is not None else tuple(
                d if isinstance(d, int) else -1 for d in self.plan.tensors[name].shape)

    @property
    def all_shapes_specified(self) -> bool:
        return all(n in self._shapes for n in self.plan.inputs)

    # ---- bindings and memory ---------------------------------------------------------------------
    @_locked
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

    @_locked
    def set_output_allocator(self, name: str, allocator) -> None:
        """Outputs sized at run time (data-dependent) are delivered to `allocator` once their size is
        known (runtime.dynamic.OutputAllocator: TensorRT's IOutputAllocator role); None removes it."""
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

    @_locked
    def set_device_memory(self, memory_: torch.Tensor) -> None:
        """Use `memory_` (>= engine.device_memory_size bytes on the engine device) as the arena."""
        if not isinstance(memory_, torch.Tensor) or memory_.device.type != self.device.type \
                or not memory_.is_contiguous():
            raise TensorforgeError(f"device memory must be a contiguous torch tensor on {self.device}")
        if self._arena is not None and self._arena.data_ptr() != memory_.data_ptr():
            self._mem.give(self._arena)  # an arena the context took from its allocator
        self._arena = memory_.reshape(-1).view(torch.uint8)
        self._external_memory = True
        self._forget_plans()

    def _forget_plans(self) -> None:
        """Drop cached plans and graphs (they point into the arena)."""
        self._prepared_key = None
        self._graphs.clear()
        while self._plans:
            self._drop_oldest_plan()
        self._valid.clear()

    def _drop_oldest_plan(self) -> None:
        """Evict the least recently used plan; the memory its layer graphs kept no longer counts and
        its constants' device copies go back to the user allocator."""
        old, (_, _, bound) = self._plans.popitem(last=False)
        self._valid.discard(old)
        self._mem.give_tagged(old)
        if getattr(self, "layer_graphs", None) is not None and bound is not None:
            self.layer_graphs.release(getattr(bound, "kept_bytes", 0))

    def _const_copier(self, key):
        """How the plan of shape set `key` copies host constants to the device: None (torch's
        allocator) without a user allocator, else from it, held until that plan is evicted."""
        return (lambda t: self._mem.copy_for(key, t)) if self._mem.user else None

    @property
    def device_memory(self):
        return self._arena

    def _own(self, old, shape, dtype, device):
        """A context-owned I/O tensor, from the allocator on the engine device (`old` given back)."""
        if device != self.device:  # a host copy of a shape-tensor input of a CUDA engine
            return torch.empty(shape, dtype=dtype, device=device)
        self._mem.give(old)
        return self._mem.tensor(shape, dtype)

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
