"""What tactic candidates functions read: a layer's concrete input/output descriptions at the
profile's opt shapes (LayerShapes, built by the tactic selector) and checks on them."""
from __future__ import annotations

from dataclasses import dataclass

FLOATS = ("float32", "float16", "bfloat16")
LOW = ("float16", "bfloat16")


@dataclass(frozen=True)
class LayerShapes:
    """Per input / output slot {"dtype", "shape", "kind"[, "value"]}, or None (omitted or unknown).
    kind: "activation", "weight" or "shape"; value: the contents of shape tensors and small weights."""
    inputs: tuple = ()
    outputs: tuple = ()

    @classmethod
    def of(cls, inputs, outputs=()) -> "LayerShapes":
        return cls(tuple(inputs), tuple(outputs))

    def inp(self, i: int) -> dict | None:
        """Input i's description (None when omitted or out of range)."""
        return self.inputs[i] if i < len(self.inputs) else None

    def out(self, i: int) -> dict | None:
        """Output i's description (None when out of range)."""
        return self.outputs[i] if i < len(self.outputs) else None


def is_weight(t) -> bool:
    return t is not None and t.get("kind") == "weight"


def weight_gemm(layer, shapes: LayerShapes, dtypes=LOW):
    """(M, N, K) of a MatMul / Gemm (or fused) layer whose B is a 2-D constant weight of A's dtype
    (one of `dtypes`), A of rank >= 2 (exactly 2 with transA = 0 for Gemm); None otherwise."""
    a, b = shapes.inp(0), shapes.inp(1)
    if a is None or not is_weight(b) or len(b["shape"]) != 2 or len(a["shape"]) < 2:
        return None
    if a["dtype"] not in dtypes or b["dtype"] != a["dtype"]:
        return None
    at = layer.attrs
    gemm = layer.type in ("Gemm", "fused.GemmAct")
    if gemm and (len(a["shape"]) != 2 or at.get("transA", 0)):
        return None
    k, n = b["shape"][::-1] if gemm and at.get("transB", 0) else b["shape"]
    if a["shape"][-1] != k:
        return None
    m = 1
    for d in a["shape"][:-1]:
        m *= int(d)
    return m, n, k
