"""Data-dependent regions of a plan, as pure functions over plain data.

A layer is *dynamic* when an output's shape names a data-dependent size (a `dd_` symbol: NonZero,
Unique, Range with run-time bounds, Reshape to computed values, ...) or when it reads, directly or
not, the output of a dynamic layer: its input addresses or sizes are known only once that layer has
run. Everything else is *static*: the builder orders static layers first (`static_first`), so a
context runs one static prefix (arena, CUDA graph) and then the dynamic tail eagerly, where outputs
are allocated on demand (kernel-allocated, or by an output allocator) once their size is known."""
from __future__ import annotations

from .shapes import symbols_of

DATA_DEPENDENT_PREFIX = "dd_"  # the same prefix ir.symbolic gives data-dependent dims


def dd_symbols(shape) -> set:
    """The data-dependent symbols named by a shape of ints and dim-expression strings."""
    out = set()
    for d in shape:
        if not isinstance(d, int):
            out |= {s for s in symbols_of(d) if s.startswith(DATA_DEPENDENT_PREFIX)}
    return out


def dynamic_layers(layers, tensors) -> list[bool]:
    """Per layer: dynamic (see the module docstring). layers: LayerSpec-like (inputs, outputs);
    tensors: {name: TensorSpec-like with .shape}."""
    dyn_tensors: set = set()
    out = []
    for lay in layers:
        d = any(i in dyn_tensors for i in lay.inputs if i) or any(
            o in tensors and dd_symbols(tensors[o].shape) for o in lay.outputs)
        if d:
            dyn_tensors.update(lay.outputs)
        out.append(d)
    return out


def static_first(layers, tensors) -> list:
    """The layers reordered so that every static layer comes before every dynamic one (a stable
    partition: both keep their order, which stays topological since no static layer reads a
    dynamic one's output)."""
    dyn = dynamic_layers(layers, tensors)
    return [lay for lay, d in zip(layers, dyn) if not d] + [lay for lay, d in zip(layers, dyn) if d]


def first_dynamic(layers, tensors) -> int:
    """Index of the first dynamic layer (len(layers) when there is none)."""
    return next((k for k, d in enumerate(dynamic_layers(layers, tensors)) if d), len(layers))


def static_prefix(layers, tensors, launch_names) -> int:
    """How many of the launches (named after their layers, in order) run before the first dynamic
    layer: the part a CUDA graph may capture."""
    dyn = {lay.name for lay, d in zip(layers, dynamic_layers(layers, tensors)) if d}
    return next((k for k, n in enumerate(launch_names) if n in dyn), len(launch_names))


def graph_prefix(plan, xp) -> int:
    """How many leading launches of ExecPlan `xp` a CUDA graph may capture: all of them when no
    layer is data-dependent or host-synchronizing, else those before the first such layer (a
    kernel marked `capturable = False`, e.g. control flow, ends the prefix like a dynamic layer)."""
    if not xp.has_dynamic:
        return len(xp.launches)
    n = static_prefix(plan.layers, plan.tensors, [L.name for L in xp.launches])
    return next((k for k, L in enumerate(xp.launches[:n]) if getattr(L.fn, "capturable", True) is False), n)


def device_reads(fn, host_inputs, device):
    """`fn` with every input it reads as device data (an index not in host_inputs) moved to `device`
    when it is a host tensor. In the dynamic tail a layer may compute on the host what the next one
    reads on the device (the Shape of a data-dependent tensor, a Gather of it, then a Triton kernel,
    which takes device pointers only); plan-time host slots get device copies in execplan instead."""
    import torch
    host = frozenset(host_inputs)

    def wrapped(inputs, *outs):
        ins = [t.to(device) if j not in host and isinstance(t, torch.Tensor) and t.device.type == "cpu" else t
               for j, t in enumerate(inputs)]
        return fn(ins, *outs)
    for a in ("takes_out", "capturable", "bind"):  # what the runner asks a kernel (class attributes too)
        if hasattr(fn, a):
            setattr(wrapped, a, getattr(fn, a))
    wrapped.device_reads, wrapped.__wrapped__ = True, fn
    return wrapped


def tail_kernels(plan, kernels: dict, device) -> dict:
    """The kernels of a plan with those of its dynamic layers wrapped by `device_reads` (CUDA only:
    on the CPU every tensor is a host tensor)."""
    if getattr(device, "type", str(device)) == "cpu":
        return dict(kernels)
    dyn = dynamic_layers(plan.layers, plan.tensors)
    out = dict(kernels)
    for lay, d in zip(plan.layers, dyn):
        if d:
            out[lay.name] = device_reads(kernels[lay.name], lay.host_inputs, device)
    return out


def learn_sizes(spec_shape, actual, env: dict) -> dict:
    """The data-dependent sizes a computed tensor reveals: {symbol: value} for every dim of the plan
    shape that is a bare `dd_` symbol not yet in env. A revealed size that contradicts env raises."""
    found = {}
    if len(spec_shape) != len(actual):
        raise ValueError(f"rank {len(actual)} computed, plan says {len(spec_shape)} ({spec_shape})")
    for d, a in zip(spec_shape, actual):
        if isinstance(d, int):
            if d != a:
                raise ValueError(f"dim {a} computed, plan says {d} ({spec_shape})")
            continue
        name = d.strip()
        if name.startswith(DATA_DEPENDENT_PREFIX) and name.isidentifier():
            known = env.get(name, found.get(name))
            if known is not None and known != a:
                raise ValueError(f"size '{name}' is {a} here but {known} elsewhere")
            found[name] = int(a)
    return found


class OutputAllocator:
    """TensorRT's IOutputAllocator role for outputs sized at run time: once an output's size is
    known the context asks `reallocate_output(name, shape, dtype, device)` for a tensor of at least
    that many elements, writes the output into its first elements and calls `notify_shape(name,
    shape)`. This one keeps one buffer per output and grows it (doubling) only when too small, so
    repeated inferences reuse memory; `output(name)` is the last output, shaped."""

    def __init__(self):
        self.buffers: dict = {}
        self.shapes: dict = {}

    def reallocate_output(self, name, shape, dtype, device):
        import torch
        n = 1
        for d in shape:
            n *= int(d)
        buf = self.buffers.get(name)
        if buf is None or buf.numel() < n or buf.dtype != dtype or buf.device != torch.device(device):
            cap = max(n, 2 * buf.numel() if buf is not None and buf.dtype == dtype else 1, 1)
            buf = self.buffers[name] = torch.empty(cap, dtype=dtype, device=device)
        return buf

    def notify_shape(self, name, shape) -> None:
        self.shapes[name] = tuple(int(d) for d in shape)

    def output(self, name):
        """The last output written for `name`, with its shape (a view of the buffer)."""
        shape = self.shapes[name]
        n = 1
        for d in shape:
            n *= d
        return self.buffers[name][:n].view(shape)


def deliver(allocator, name, result):
    """Hand a computed output to an allocator: ask for memory of its size, copy, notify the shape."""
    buf = allocator.reallocate_output(name, tuple(result.shape), result.dtype, result.device)
    view = buf.reshape(-1)[:result.numel()].view(tuple(result.shape))
    view.copy_(result)
    allocator.notify_shape(name, tuple(result.shape))
    return view


def deliver_outputs(plan, allocators: dict, slots: dict) -> None:
    """Hand every run-time-sized output that has an allocator to it (ordered on the current stream)."""
    for name, alloc in allocators.items():
        if plan.tensors[name].dynamic and slots.get(name) is not None:
            deliver(alloc, name, slots[name])
