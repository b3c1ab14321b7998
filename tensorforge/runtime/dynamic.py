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
