"""Generated-kernel cases shared by the golden-source tests and the interpreter / GPU tests."""
from __future__ import annotations

import importlib.util

import pytest
import torch

from tensorforge.ops.fused.expr import ExprBuilder

HAS_TRITON = importlib.util.find_spec("triton") is not None  # the registry offers triton tactics (CUDA devices)
# Triton's CPU interpreter runs where triton is installed and no GPU is (use with the `interpret` fixture)
ON_CPU = importlib.util.find_spec("triton") is not None and not torch.cuda.is_available()
interpreter_only = pytest.mark.skipif(not ON_CPU, reason="needs triton (interpreter) on a machine without CUDA")


def gelu_bias_expr():
    """0.5 * gelu(x + b)."""
    b = ExprBuilder()
    e = b.op("Gelu", [b.op("Add", [b.input(0), b.input(1)])], {"approximate": "none"})
    return b.build(b.op("Mul", [e, b.const(0.5, "float32")]))


def where_cast_expr():
    """cast(where(x > 0, x, y), fp16) with a -inf fill when y is NaN."""
    b = ExprBuilder()
    x, y = b.input(0), b.input(1)
    yy = b.op("Where", [b.op("IsNaN", [y]), b.const(float("-inf"), "float32"), y])
    w = b.op("Where", [b.op("Greater", [x, b.const(0.0, "float32")]), x, yy])
    return b.build(b.op("Cast", [w], {"to": 10}))


def int_expr():
    """(a / b) % 7 + a (ONNX integer semantics)."""
    b = ExprBuilder()
    a, c = b.input(0), b.input(1)
    q = b.op("Mod", [b.op("Div", [a, c]), b.const(7, "int64")])
    return b.build(b.op("Add", [q, a]))


def act_chain_expr():
    """hardswish(relu6(x) * s) - tanh(x), a typical epilogue."""
    b = ExprBuilder()
    x = b.input(0)
    r = b.op("Clip", [x], {"min": 0.0, "max": 6.0})
    h = b.op("HardSwish", [b.op("Mul", [r, b.input(1)])])
    return b.build(b.op("Sub", [h, b.op("Tanh", [x])]))


def residual_relu_expr():
    """relu(y + r)."""
    b = ExprBuilder()
    return b.build(b.op("Relu", [b.op("Add", [b.input(0), b.input(1)])]))


def square_prologue():
    """(a - b)^2."""
    b = ExprBuilder()
    d = b.op("Sub", [b.input(0), b.input(1)])
    return b.build(b.op("Pow", [d, b.const(2.0, "float32")]))


def epilogue_must_run(monkeypatch):
    """Make every EpilogueRunner call run its generated kernel: a fallback to the reference fails the test."""
    from tensorforge.kernels.triton.runners import EpilogueRunner
    orig = EpilogueRunner._epilogue

    def checked(self, ins, outs):
        res = orig(self, ins, outs)
        assert res is not None, "fell back to the reference"
        return res
    monkeypatch.setattr(EpilogueRunner, "_epilogue", checked)
