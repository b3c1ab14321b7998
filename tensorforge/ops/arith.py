"""Binary and variadic arithmetic with broadcasting (Add..Mod, Max/Min/Sum/Mean) and its unsigned handling."""
from __future__ import annotations

import numpy as np
from ..ir.lazy import sympy
import torch

from ..ir.symbolic import norm
from .common import infer_broadcast
from .registry import infer, reference, symval
from .symvalue import FLOATS, elementwise, float_binary

# unsigned types torch has no CPU kernels for (uint16/32/64)
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


def _sym_div(a, b):
    return sympy.floor(sympy.sympify(a) / b) if not (isinstance(a, int) and isinstance(b, int)) \
        else int(a / b)


_SYM_BIN = {"Add": lambda a, b: a + b, "Sub": lambda a, b: a - b, "Mul": lambda a, b: a * b,
            "Div": _sym_div, "Mod": lambda a, b: sympy.Mod(a, b) if not isinstance(a, int) else a % b,
            "Max": lambda a, b: sympy.Max(a, b), "Min": lambda a, b: sympy.Min(a, b)}


def _either(np_fn, sym_fn):
    """np_fn on numpy scalars (concrete floats), sym_fn on sympy operands."""
    return lambda a, b: sym_fn(a, b) if isinstance(a, sympy.Basic) or isinstance(b, sympy.Basic) \
        else np_fn(a, b)


# float shape arithmetic (e.g. Cast(dim, FLOAT) / 2): numpy in the dtype, or exact sympy
_FLOAT_BIN = {"Add": lambda a, b: a + b, "Sub": lambda a, b: a - b, "Mul": lambda a, b: a * b,
              "Div": lambda a, b: a / b if b != 0 else None,
              "Max": _either(np.maximum, lambda a, b: sympy.Max(a, b)),  # sympy on first use only
              "Min": _either(np.minimum, lambda a, b: sympy.Min(a, b))}


def int_symval(fn, float_fn=None):
    """A symbolic-value rule applying fn elementwise to the contents of two int32/int64 inputs
    (float_fn to float inputs, exactly: see symvalue.float_binary)."""
    def f(node, a, b):
        dt = node.inputs[0].dtype
        if float_fn is not None and dt in FLOATS:
            return (lambda r: None if r is None else [r])(
                elementwise(lambda x, y: float_binary(float_fn, x, y, dt), a, b))
        if dt not in ("int64", "int32"):
            return None
        out = np.frompyfunc(lambda x, y: norm(fn(x, y)), 2, 1)(a, b)
        out = np.asarray(out, dtype=object)
        if any(x is None for x in out.reshape(-1)):
            return None
        return [out]
    return f


for _op, _fn in _SYM_BIN.items():
    symval(_op)(int_symval(_fn, _FLOAT_BIN.get(_op)))
