"""Elementwise ops: unary math, activations, binary arithmetic with broadcasting, logic."""
from __future__ import annotations

import math

import numpy as np
from ..ir.lazy import sympy
import torch
import torch.nn.functional as F

from ..ir.symbolic import norm
from .common import infer_bool_broadcast, infer_broadcast, infer_same, to_obj
from .registry import infer, reference, symval

# ---- unary ---------------------------------------------------------------------------------
_UNARY = {
    "Relu": torch.relu, "Sigmoid": torch.sigmoid, "Tanh": torch.tanh, "Erf": torch.erf,
    "Sqrt": torch.sqrt, "Exp": torch.exp, "Log": torch.log, "Abs": torch.abs, "Neg": torch.neg,
    "Reciprocal": torch.reciprocal, "Floor": torch.floor, "Ceil": torch.ceil,
    "Round": torch.round, "Sign": torch.sign, "Not": torch.logical_not,
    "Softplus": F.softplus, "Mish": lambda x: x * torch.tanh(F.softplus(x)),
    "Sin": torch.sin, "Cos": torch.cos, "Tan": torch.tan, "Asin": torch.asin, "Acos": torch.acos,
    "Atan": torch.atan, "Sinh": torch.sinh, "Cosh": torch.cosh, "Asinh": torch.asinh,
    "Acosh": torch.acosh, "Atanh": torch.atanh, "Softsign": F.softsign,
}


def _unary(fn):
    def ref(x):
        return fn(x)
    return ref


for _op, _fn in _UNARY.items():
    reference(_op)(_unary(_fn))
infer(*_UNARY)(infer_same)


@reference("LeakyRelu")
def leaky_relu(x, alpha=0.01):
    return F.leaky_relu(x, alpha)


@reference("Elu")
def elu(x, alpha=1.0):
    return F.elu(x, alpha)


@reference("Selu")
def selu(x, alpha=1.67326319217681884765625, gamma=1.05070102214813232421875):
    return gamma * torch.where(x > 0, x, alpha * (torch.exp(x) - 1))


@reference("Celu")
def celu(x, alpha=1.0):
    return F.celu(x, alpha)


@reference("ThresholdedRelu")
def thresholded_relu(x, alpha=1.0):
    return torch.where(x > alpha, x, torch.zeros_like(x))


@reference("HardSigmoid")
def hard_sigmoid(x, alpha=0.2, beta=0.5):
    return torch.clamp(alpha * x + beta, 0, 1)


@reference("HardSwish")
def hard_swish(x):
    return x * torch.clamp(x / 6 + 0.5, 0, 1)


@reference("Gelu")
def gelu(x, approximate="none"):
    return F.gelu(x, approximate=approximate)


@reference("Clip")
def clip(x, min=None, max=None):  # noqa: A002 - ONNX names
    # opset < 11: min/max attributes (floats); opset >= 11: optional scalar inputs, read on the
    # device (no .item(): no host sync, capturable); an empty input means "no bound"
    lo, hi = _bound(min, x), _bound(max, x)
    if lo is None and hi is None:
        return x.clone()
    return torch.clamp(x, lo, hi)  # both bounds are inputs (tensors) or both attributes (numbers)


def _bound(b, x):
    """A Clip bound: None, a python number (attribute) or a 0-d tensor of x's dtype."""
    if not isinstance(b, torch.Tensor):
        return b
    return b.reshape(()).to(x.dtype) if b.numel() else None


@reference("PRelu")
def prelu(x, slope):
    return torch.where(x >= 0, x, x * slope)


@reference("IsNaN")
def isnan(x):
    return torch.isnan(x)


@reference("IsInf")
def isinf(x, detect_negative=1, detect_positive=1):
    return (torch.isposinf(x) & bool(detect_positive)) | (torch.isneginf(x) & bool(detect_negative))


infer("LeakyRelu", "Elu", "Selu", "Celu", "ThresholdedRelu", "HardSigmoid", "HardSwish", "Gelu",
      "Clip")(infer_same)
infer("PRelu")(infer_broadcast)
infer("IsNaN", "IsInf")(lambda node: [("bool", node.inputs[0].shape)])

# ---- unsigned types torch has no CPU kernels for (uint16/32/64) ------------------------------
_UNSIGNED = (torch.uint16, torch.uint32, torch.uint64)
_SIGN = -(2 ** 63)


def unsigned_safe(fn, order=False):
    """Wrap fn so uint16/32 inputs run via int64 and uint64 bit-exactly via an int64 view.

    order=True (comparisons, min/max): uint64 is mapped monotonically (sign bit flipped)."""
    def conv(x, dt):
        if dt != torch.uint64:
            return x.to(torch.int64)
        return x.view(torch.int64) ^ _SIGN if order else x.view(torch.int64)

    def wrapped(*xs, **kw):
        if not any(isinstance(x, torch.Tensor) and x.dtype in _UNSIGNED for x in xs):
            return fn(*xs, **kw)
        out = fn(*[conv(x, x.dtype) if isinstance(x, torch.Tensor) and x.dtype in _UNSIGNED else x
                   for x in xs], **kw)
        dt = xs[0].dtype
        if out.dtype == torch.bool or dt not in _UNSIGNED:
            return out
        if dt == torch.uint64:
            return (out ^ _SIGN if order else out).view(torch.uint64)
        return out.to(dt)
    return wrapped


def unsigned_safe_order(fn):
    return unsigned_safe(fn, order=True)


# ---- binary --------------------------------------------------------------------------------


def _int_div(a, b):
    # ONNX integer Div truncates toward zero (C semantics)
    return torch.div(a, b, rounding_mode="trunc")


def _div(a, b):
    if not a.is_floating_point():
        return _int_div(a, b)
    return a / b


def _mod(a, b, fmod=0):
    if fmod:  # fmod=0 on floats is Python's % (sign of the divisor), like integers
        return torch.fmod(a, b)
    return torch.remainder(a, b)


def _pow(a, b):
    out = torch.pow(a, b.to(a.dtype) if a.is_floating_point() else b)
    return out.to(a.dtype)


_BINARY = {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": _div, "Pow": _pow,
           "BitShift": None}
for _op in ("Add", "Sub", "Mul", "Div", "Pow"):
    reference(_op)(unsigned_safe(_BINARY[_op]))
reference("Mod")(unsigned_safe(_mod))
infer("Add", "Sub", "Mul", "Div", "Pow", "Mod")(infer_broadcast)


@reference("Max")
@unsigned_safe_order
def vmax(*xs):
    out = xs[0]
    for x in xs[1:]:
        out = torch.maximum(out, x)
    return out


@reference("Min")
@unsigned_safe_order
def vmin(*xs):
    out = xs[0]
    for x in xs[1:]:
        out = torch.minimum(out, x)
    return out


@reference("Sum")
@unsigned_safe
def vsum(*xs):
    out = xs[0]
    for x in xs[1:]:
        out = out + x
    return out


@reference("Mean")
def vmean(*xs):
    return vsum(*xs) / len(xs)


infer("Max", "Min", "Sum", "Mean")(infer_broadcast)

_LOGIC = {"And": torch.logical_and, "Or": torch.logical_or, "Xor": torch.logical_xor,
          "Equal": torch.eq, "Less": torch.lt, "Greater": torch.gt, "LessOrEqual": torch.le,
          "GreaterOrEqual": torch.ge}
for _op, _fn in _LOGIC.items():
    reference(_op)(unsigned_safe(_fn, order=True))
infer(*_LOGIC)(infer_bool_broadcast)


@reference("Where")
def where(c, a, b):
    return torch.where(c, a, b)


infer("Where")(lambda node: [(node.inputs[1].dtype,
                              infer_broadcast(node)[0][1])])


# ---- symbolic values: shape arithmetic on object arrays -------------------------------------
def _sym_div(a, b):
    return sympy.floor(sympy.sympify(a) / b) if not (isinstance(a, int) and isinstance(b, int)) \
        else int(a / b)


_SYM_BIN = {"Add": lambda a, b: a + b, "Sub": lambda a, b: a - b, "Mul": lambda a, b: a * b,
            "Div": _sym_div, "Mod": lambda a, b: sympy.Mod(a, b) if not isinstance(a, int) else a % b,
            "Max": lambda a, b: sympy.Max(a, b), "Min": lambda a, b: sympy.Min(a, b),
            "Equal": lambda a, b: bool(sympy.Eq(a, b)) if not isinstance(sympy.Eq(a, b), sympy.Eq) else None}


def _make_symbin(fn):
    def f(node, a, b):
        if node.inputs[0].dtype not in ("int64", "int32"):
            return None
        out = np.frompyfunc(lambda x, y: norm(fn(x, y)), 2, 1)(a, b)
        out = np.asarray(out, dtype=object)
        if any(x is None for x in out.reshape(-1)):
            return None
        return [out]
    return f


for _op, _fn in _SYM_BIN.items():
    symval(_op)(_make_symbin(_fn))


@symval("Neg")
def _sym_neg(node, a):
    return [np.asarray(np.frompyfunc(lambda x: norm(-x), 1, 1)(a), dtype=object)]


@symval("Where")
def _sym_where(node, c, a, b):
    """Select on a known condition (bools, or the 0/1 a symbolic Equal/Less leaves for a bool tensor)."""
    ok = (bool, np.bool_) if node.inputs[0].dtype != "bool" else (bool, np.bool_, int, np.integer)
    if any(not isinstance(x, ok) or isinstance(x, sympy.Basic) for x in c.reshape(-1)):
        return None
    return [np.asarray(np.where(c.astype(bool), a, b), dtype=object)]


_ = (math, to_obj)


# ---- symbolic logic (shape-condition arithmetic in expanded function bodies) -------------------
def _truth(x):
    """A python bool for a concrete or decidable symbolic truth value, else None."""
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return bool(x)
    r = sympy.sympify(x)
    return bool(r) if r in (sympy.true, sympy.false) else None


def _make_symlogic(fn):
    def f(node, *xs):
        out = np.frompyfunc(lambda *a: (lambda t: None if None in t else fn(*t))([_truth(v) for v in a]),
                            len(xs), 1)(*xs)
        out = np.asarray(out, dtype=object)
        return None if any(x is None for x in out.reshape(-1)) else [out]
    return f


symval("Not")(_make_symlogic(lambda a: not a))
symval("And")(_make_symlogic(lambda a, b: a and b))
symval("Or")(_make_symlogic(lambda a, b: a or b))
symval("Xor")(_make_symlogic(lambda a, b: a != b))

_SYM_CMP = {"Less": lambda a, b: a < b, "Greater": lambda a, b: a > b,
            "LessOrEqual": lambda a, b: a <= b, "GreaterOrEqual": lambda a, b: a >= b}


def _make_symcmp(fn):
    def f(node, a, b):
        out = np.asarray(np.frompyfunc(lambda x, y: _truth(fn(sympy.sympify(x), sympy.sympify(y))), 2, 1)(a, b),
                         dtype=object)
        return None if any(x is None for x in out.reshape(-1)) else [out]
    return f


for _op, _fn in _SYM_CMP.items():
    symval(_op)(_make_symcmp(_fn))
