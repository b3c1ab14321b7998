"""Lowering: an optimized ir.Graph -> EnginePlan (tensors + layers) and the weight dict."""
from __future__ import annotations

import torch

from ..ir import Graph
from ..ir.attrs import to_json as jsonable_attr
from ..ir.subgraph import hoist_constants
from ..errors import TensorforgeError
from ..ir.symbolic import DATA_DEPENDENT_PREFIX, free_symbols, to_str, value_str
from ..ops import registry
from ..runtime.dynamic import static_first
from ..runtime.plan import EnginePlan, LayerSpec, TensorSpec


def _shape_strs(shape):
    return [to_str(d) for d in shape]


def lower(g: Graph, default_tactic=None) -> tuple[EnginePlan, dict]:
    """Turn the graph into layers in execution order; constants become weights (subgraph weights
    too: they are hoisted into captured inputs of their control-flow layer)."""
    hoist_constants(g)
    eager: dict[str, str] = {}
    tensors: dict[str, TensorSpec] = {}
    weights: dict[str, torch.Tensor] = {}
    layers: list[LayerSpec] = []
    outputs = {id(v) for v in g.outputs}
    host_uses: dict[str, bool] = {}

    def spec_for(v, kind=None):
        if v.name in tensors:
            return tensors[v.name]
        if kind is None:
            kind = ("weight" if v.const is not None else "shape" if v.sym is not None else "activation")
        dyn = any(s.startswith(DATA_DEPENDENT_PREFIX) for s in free_symbols(v.shape))
        t = TensorSpec(v.name, v.dtype, _shape_strs(v.shape), kind, dynamic=dyn)
        if kind == "weight":
            weights[v.name] = v.const
        if kind == "shape":
            t.sym = [value_str(x) for x in v.sym.reshape(-1).tolist()]
        tensors[v.name] = t
        return t

    for v in g.inputs:
        spec_for(v, "input")
    for v in g.outputs:
        if v.name not in tensors and v.producer is not None:
            spec_for(v, "output")
    for n in g.nodes:
        op = registry.get(n.op, n.domain, n.name)
        for i, v in enumerate(n.inputs):
            if v is None:
                continue
            spec_for(v)
            if v.const is not None:
                host_uses[v.name] = host_uses.get(v.name, True) and i in op.host_inputs
        for v in n.outputs:
            spec_for(v)
        if "eager_reason" in op.extra:
            eager[n.name] = op.extra["eager_reason"](n)
        is_view = op.view and not any(id(v) in outputs for v in n.outputs) and n.inputs \
            and n.inputs[0] is not None
        layers.append(LayerSpec(
            name=n.name, type=n.op, domain=n.domain, inputs=[v.name if v is not None else None for v in n.inputs],
            outputs=[v.name for v in n.outputs], attrs={k: jsonable_attr(a) for k, a in n.attrs.items()},
            origin=list(n.origin), mode="view" if is_view else "kernel",
            host_inputs=[i for i in op.host_inputs if i < len(n.inputs)],  # absent optional inputs: none
            tactic=dict(default_tactic or {"source": "aten", "name": "reference", "params": {}}),
            precision=n.outputs[0].dtype if n.outputs else "float32"))
    # graph outputs that no layer writes (folded constants / shape values) get a copy layer
    written = {o for lay in layers for o in lay.outputs}
    for v in g.outputs:
        if v.name in written:
            continue
        if v.producer is None and v.const is None and v.sym is None:
            raise TensorforgeError(f"graph output '{v.name}' is also a graph input (not supported)")
        src = spec_for(v)
        src_name = f"{v.name}__src"
        tensors[src_name] = TensorSpec(src_name, src.dtype, src.shape, src.kind, src.sym, src.host)
        if src.kind == "weight":
            weights[src_name] = weights.pop(v.name)
        tensors[v.name] = TensorSpec(v.name, v.dtype, _shape_strs(v.shape), "output")
        layers.append(LayerSpec(name=f"copy {v.name}", type="Identity", inputs=[src_name],
                                outputs=[v.name], origin=[], precision=v.dtype))
        written.add(v.name)
    for name, host in host_uses.items():
        tensors[name].host = host
    layers = static_first(layers, tensors)  # one static prefix (arena, CUDA graph), then the dynamic tail
    plan = EnginePlan(tensors=tensors, layers=layers, inputs=[v.name for v in g.inputs],
                      outputs=[v.name for v in g.outputs], opset=g.opset)
    if eager:  # layers whose kernels leave the CUDA graph (host syncs, interpreted bodies)
        plan.meta["eager_layers"] = eager
    return plan, weights
