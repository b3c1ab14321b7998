"""Pointwise expression DAGs: the JSON-able payload of fused.Pointwise and of fused epilogues.

An expression is {"nodes": [...], "out": k}; nodes are in topological order, each one of
  {"op": "input", "i": j}                      the j-th input tensor of the fused layer
  {"op": "const", "v": 0.5, "dtype": "float32"} a scalar literal
  {"op": "Relu", "args": [k, ...], "attrs": {...}} an ONNX elementwise op on earlier nodes
The torch evaluator runs every node through the op registry's reference, so a fused layer is
exactly the composition of the ONNX ops it replaced (the oracle for generated kernels).
"""
from __future__ import annotations

import json

import torch

from ... import dtypes

UNARY = ("Relu", "Sigmoid", "Tanh", "Erf", "Sqrt", "Exp", "Log", "Abs", "Neg", "Reciprocal",
         "Floor", "Ceil", "Round", "Sign", "Not", "Softplus", "Softsign", "Mish", "Sin", "Cos", "Tan",
         "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "LeakyRelu", "Elu",
         "Selu", "Celu", "ThresholdedRelu", "HardSigmoid", "HardSwish", "Gelu", "IsNaN", "IsInf",
         "Cast", "Clip")
BINARY = ("Add", "Sub", "Mul", "Div", "Pow", "Mod", "PRelu", "And", "Or", "Xor", "Equal", "Less",
          "Greater", "LessOrEqual", "GreaterOrEqual")
VARIADIC = ("Max", "Min", "Sum", "Mean")
POINTWISE = frozenset(UNARY + BINARY + VARIADIC + ("Where",))
BOOL_OUT = frozenset(("Not", "And", "Or", "Xor", "Equal", "Less", "Greater", "LessOrEqual",
                      "GreaterOrEqual", "IsNaN", "IsInf"))


def scalar_of(v):
    """The python scalar held by a one-element constant Value, else None."""
    if v is None or v.const is None or v.const.numel() != 1:
        return None
    x = v.const.reshape(-1)[0]
    return bool(x) if v.const.dtype == torch.bool else (
        float(x) if v.const.is_floating_point() else int(x))


def node_expr(node):
    """(op, attrs, tensor inputs) of a graph node as an expression op, or None if not pointwise.

    Clip's optional min/max inputs must be scalar constants; they become attributes."""
    if node.op not in POINTWISE or node.domain not in ("", "ai.onnx") or len(node.outputs) != 1:
        return None
    if node.op == "Clip":
        attrs = {k: float(node.attrs[k]) for k in ("min", "max") if k in node.attrs}
        for i, k in ((1, "min"), (2, "max")):
            if i < len(node.inputs) and node.inputs[i] is not None:
                s = scalar_of(node.inputs[i])
                if s is None:
                    return None
                attrs[k] = s
        return "Clip", attrs, [node.inputs[0]]
    if any(v is None for v in node.inputs) or not node.inputs:
        return None
    if node.op == "Mod" and node.inputs[0].dtype in dtypes.FLOAT_TYPES and not node.attrs.get("fmod"):
        return None  # ONNX requires fmod=1 for floats
    return node.op, dict(node.attrs), list(node.inputs)


class ExprBuilder:
    """Builds an expression with hash-consing (equal subexpressions are shared)."""

    def __init__(self, expr: dict | None = None):
        self.nodes: list[dict] = []
        self._memo: dict[str, int] = {}
        for n in (expr or {}).get("nodes", []):
            self._add(dict(n))

    def _add(self, n: dict) -> int:
        key = json.dumps(n, sort_keys=True)
        if key not in self._memo:
            self._memo[key] = len(self.nodes)
            self.nodes.append(n)
        return self._memo[key]

    def input(self, i: int) -> int:
        return self._add({"op": "input", "i": int(i)})

    def const(self, v, dtype: str) -> int:
        return self._add({"op": "const", "v": v, "dtype": dtype})

    def op(self, op: str, args, attrs=None) -> int:
        return self._add({"op": op, "args": [int(a) for a in args], "attrs": dict(attrs or {})})

    def splice(self, expr: dict, args: list[int]) -> int:
        """Inline `expr`, binding its input j to node args[j]; returns the index of its output."""
        remap = {}
        for k, n in enumerate(expr["nodes"]):
            if n["op"] == "input":
                remap[k] = args[n["i"]]
            elif n["op"] == "const":
                remap[k] = self.const(n["v"], n["dtype"])
            else:
                remap[k] = self.op(n["op"], [remap[a] for a in n["args"]], n.get("attrs"))
        return remap[expr["out"]]

    def build(self, out: int) -> dict:
        """The expression computing node `out`, pruned to the nodes it needs and renumbered."""
        need, stack = set(), [out]
        while stack:
            k = stack.pop()
            if k not in need:
                need.add(k)
                stack += self.nodes[k].get("args", [])
        order = sorted(need)
        new = {k: i for i, k in enumerate(order)}
        nodes = []
        for k in order:
            n = dict(self.nodes[k])
            if "args" in n:
                n["args"] = [new[a] for a in n["args"]]
            nodes.append(n)
        return {"nodes": nodes, "out": new[out]}


def identity_expr() -> dict:
    return {"nodes": [{"op": "input", "i": 0}], "out": 0}


def num_inputs(expr: dict) -> int:
    return 1 + max((n["i"] for n in expr["nodes"] if n["op"] == "input"), default=-1)


def ops_of(expr: dict) -> list[str]:
    return [n["op"] for n in expr["nodes"] if n["op"] not in ("input", "const")]


def node_dtypes(expr: dict, in_dtypes) -> list[str]:
    """The dtype of every expression node given the input dtypes (ONNX typing rules).

    A literal takes the type of the tensors it meets (as a 0-d tensor does in torch), so an
    expression stays valid when a precision pass changes its inputs' dtypes."""
    out = []
    nodes = expr["nodes"]

    def pick(args):
        return next((out[a] for a in args if nodes[a]["op"] != "const"), out[args[0]])
    for n in nodes:
        op = n["op"]
        if op == "input":
            out.append(in_dtypes[n["i"]])
        elif op == "const":
            out.append(n["dtype"])
        elif op == "Cast":
            out.append(dtypes.from_onnx(n["attrs"]["to"]))
        elif op in BOOL_OUT:
            out.append("bool")
        elif op == "Where":
            out.append(pick(n["args"][1:]))
        else:
            out.append(pick(n["args"]))
    return out


def expr_dtype(expr: dict, in_dtypes) -> str:
    return node_dtypes(expr, in_dtypes)[expr["out"]]


def eval_expr(expr: dict, inputs, opset: int = 17):
    """Evaluate an expression on torch tensors through the registry's references."""
    from .. import registry
    dev = next((t.device for t in inputs if isinstance(t, torch.Tensor)), torch.device("cpu"))
    vals = []
    for n in expr["nodes"]:
        op = n["op"]
        if op == "input":
            vals.append(inputs[n["i"]])
        elif op == "const":
            vals.append(torch.full((), n["v"], dtype=dtypes.to_torch(n["dtype"]), device=dev))
        else:
            res = registry.get(op).run([vals[a] for a in n["args"]], n.get("attrs", {}), opset)
            vals.append(res[0])
    return vals[expr["out"]]
