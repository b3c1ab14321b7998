"""Shape-tensor inputs (TensorRT's shape tensors): a small int graph input whose values reach a
shape parameter read on the host (Reshape's shape, Expand/Tile/ConstantOfShape/Slice/Range...)
gets symbolic contents, one positive-integer symbol per element (`<input>_v<i>`), before inference,
so shapes downstream are expressions of those values and one engine serves every value in range.
The runtime binds the symbols from the input's host values."""
from __future__ import annotations

import numpy as np

from ..ir import Graph
from ..ir.symbolic import symbol
from ..ops import registry

SHAPE_DTYPES = ("int32", "int64")
MAX_ELEMENTS = 64
SHAPE_ONLY = ("Shape", "Size")  # read only their input's shape: the walk stops there


def _candidates(g: Graph) -> dict:
    """Graph inputs that may be shape tensors: int32/int64, rank 0 or 1, static and small."""
    out = {}
    for v in g.inputs:
        if v.dtype in SHAPE_DTYPES and v.shape is not None and len(v.shape) <= 1 \
                and all(isinstance(d, int) for d in v.shape) and int(np.prod(v.shape)) <= MAX_ELEMENTS:
            out[v.name] = v
    return out


def _host_read(g: Graph) -> set:
    """Names of values that (transitively) feed a host-read input slot."""
    todo = []
    for n in g.nodes:
        if not registry.has(n.op, n.domain):
            continue
        hosts = registry.get(n.op, n.domain).host_inputs
        todo += [n.inputs[i] for i in hosts if i < len(n.inputs) and n.inputs[i] is not None]
    seen = set()
    while todo:
        v = todo.pop()
        if v.name in seen:
            continue
        seen.add(v.name)
        if v.producer is not None and v.producer.op not in SHAPE_ONLY:
            todo += [x for x in v.producer.inputs if x is not None]
    return seen


def mark_shape_tensors(g: Graph) -> list[str]:
    """Give symbolic contents to the graph inputs used as shape tensors; returns their names."""
    cands = _candidates(g)
    if not cands:
        return []
    found = [name for name in cands if name in _host_read(g)]
    for name in found:
        v = cands[name]
        n = int(np.prod(v.shape))
        syms = [symbol(f"{name}_v{i}") for i in range(n)]
        v.sym = np.array(syms, dtype=object).reshape(tuple(v.shape))
    return found


def shape_tensor_inputs(model) -> list[str]:
    """Names of the graph inputs of `model` (ModelProto / path / zoo:NAME) that are shape tensors."""
    from .onnx_loader import load_model_proto, to_graph
    return mark_shape_tensors(to_graph(load_model_proto(model)))
