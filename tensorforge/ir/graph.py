"""The IR: a Graph of Nodes connected by Values, kept in topological order."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .symbolic import fmt_shape



@dataclass(eq=False)
class Value:
    """A tensor edge. `const` holds data of a constant; `sym` an int tensor's symbolic contents."""
    name: str
    dtype: str | None = None
    shape: tuple | None = None
    const: torch.Tensor | None = None
    sym: np.ndarray | None = None  # object array of int / sympy dims (shape tensors)
    producer: "Node | None" = None
    users: list = field(default_factory=list)

    @property
    def is_const(self) -> bool:
        return self.const is not None

    def __repr__(self):
        return f"%{self.name}:{self.dtype}{fmt_shape(self.shape)}"


@dataclass(eq=False)
class Node:
    """One operation. `op` is an ONNX op type or a namespaced fused op ('fused.Pointwise')."""
    op: str
    name: str
    inputs: list  # list[Value | None]; None = omitted optional input
    outputs: list  # list[Value]
    attrs: dict[str, Any] = field(default_factory=dict)
    domain: str = ""
    origin: list[str] = field(default_factory=list)  # ONNX node names this node came from

    def __repr__(self):
        return f"{self.name}:{self.op}"


class Graph:
    """A dataflow graph. Nodes are kept in topological order by the mutators below."""

    def __init__(self, name: str = "graph", opset: int = 17):
        self.name = name
        self.opset = opset
        self.nodes: list[Node] = []
        self.inputs: list[Value] = []
        self.outputs: list[Value] = []
        self.values: dict[str, Value] = {}
        self.metadata: dict[str, Any] = {}
        # a subgraph's stand-ins for outer-scope values, aligned with its node's trailing inputs
        self.captures: list[Value] = []
        self._ids = itertools.count()  # per graph: helper names must not depend on earlier builds

    # ---- construction -------------------------------------------------------------------
    def unique_name(self, base: str) -> str:
        name = base
        while name in self.values:
            name = f"{base}_{next(self._ids)}"
        return name

    def value(self, name: str, dtype=None, shape=None) -> Value:
        """Return the value called `name`, creating it if needed."""
        v = self.values.get(name)
        if v is None:
            v = Value(name, dtype, tuple(shape) if shape is not None else None)
            self.values[name] = v
        return v

    def new_value(self, base: str, dtype=None, shape=None) -> Value:
        return self.value(self.unique_name(base), dtype, shape)

    def const(self, data, name: str = "const") -> Value:
        """A new constant value holding `data` (tensor, array or python number)."""
        from ..dtypes import from_torch
        t = data if isinstance(data, torch.Tensor) else torch.as_tensor(np.asarray(data))
        v = self.new_value(name, from_torch(t.dtype), tuple(t.shape))
        v.const = t
        return v

    def add_node(self, op, inputs, outputs, attrs=None, name=None, domain="", origin=None,
                 index=None) -> Node:
        """Create a node, wire its use lists and insert it (at `index`, default: the end)."""
        n = Node(op, name or self.unique_node_name(op), list(inputs), list(outputs), dict(attrs or {}),
                 domain, list(origin) if origin is not None else [name or op])
        for v in n.inputs:
            if v is not None:
                v.users.append(n)
        for v in n.outputs:
            v.producer = n
        if index is None:
            self.nodes.append(n)
        else:
            self.nodes.insert(index, n)
        return n

    def unique_node_name(self, base: str) -> str:
        names = {n.name for n in self.nodes}
        name, i = base, 0
        while name in names:
            i += 1
            name = f"{base}_{i}"
        return name

    def remove_node(self, node: Node) -> None:
        for v in node.inputs:
            if v is not None and node in v.users:
                v.users.remove(node)
        for v in node.outputs:
            if v.producer is node:
                v.producer = None
        self.nodes.remove(node)

    def set_input(self, node: Node, i: int, v: Value | None) -> None:
        old = node.inputs[i]
        if old is not None and node in old.users:
            old.users.remove(node)
        node.inputs[i] = v
        if v is not None:
            v.users.append(node)

    def replace_uses(self, old: Value, new: Value) -> None:
        """Make every user of `old` (and the graph outputs) read `new` instead."""
        for n in list(old.users):
            for i, v in enumerate(n.inputs):
                if v is old:
                    self.set_input(n, i, new)
        self.outputs = [new if o is old else o for o in self.outputs]

    # ---- queries --------------------------------------------------------------------------
    def is_output(self, v: Value) -> bool:
        return any(o is v for o in self.outputs)

    def prune_values(self) -> None:
        """Drop values that nothing produces, uses, or exposes."""
        keep = {id(v) for v in self.inputs} | {id(v) for v in self.outputs} | {id(v) for v in self.captures}
        for n in self.nodes:
            keep |= {id(v) for v in n.inputs if v is not None} | {id(v) for v in n.outputs}
        self.values = {k: v for k, v in self.values.items() if id(v) in keep}

    def dump(self) -> str:
        """A readable text form for debugging."""
        lines = [f"graph {self.name} (opset {self.opset})"]
        lines += [f"  input  {v!r}" for v in self.inputs]
        lines += [f"  outer  {v!r}" for v in self.captures]
        for n in self.nodes:
            ins = ", ".join("None" if v is None else (f"const{fmt_shape(v.shape)}" if v.is_const else
                                                       f"%{v.name}") for v in n.inputs)
            outs = ", ".join(repr(v) for v in n.outputs)
            attrs = "" if not n.attrs else " {" + ", ".join(f"{k}={_short(a)}" for k, a in n.attrs.items()) + "}"
            lines.append(f"  {outs} = {n.op}({ins}){attrs}  # {n.name}")
            for k, a in n.attrs.items():
                if isinstance(a, Graph):
                    lines += ["    " + line for line in f"{k}: {a.dump()}".splitlines()]
        lines += [f"  output {v!r}" for v in self.outputs]
        return "\n".join(lines)

    __str__ = dump


def _short(a):
    if isinstance(a, Graph):
        return f"<graph {a.name}>"
    if isinstance(a, torch.Tensor):
        return f"tensor{list(a.shape)}" if a.numel() > 8 else str(a.tolist())
    s = repr(a)
    return s if len(s) < 60 else s[:57] + "..."
