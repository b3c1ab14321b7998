"""Exact symbolic values of small tensors (shape arithmetic), including float tensors.

An element of a symbolic value (`Value.sym`) is a python int or bool, a python float, or a sympy
expression over positive-integer dim symbols. A float tensor keeps a sympy expression only while
it is exact: integer expressions (a dim cast to float), and quotients of them, which one rounding
turns into the same Floor/Ceil/Cast as exact arithmetic does for the small values shapes have.
Concrete numbers are computed in the tensor's own dtype (numpy), so they match the run time bit
for bit. Rules return None (contents unknown) rather than guess.
"""
from __future__ import annotations

import math

import numpy as np

from ..ir.lazy import sympy
from ..ir.symbolic import norm

FLOATS = ("float16", "bfloat16", "float32", "float64")
INTS = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
_NP = {"float16": np.float16, "float32": np.float32, "float64": np.float64}
# integers a float dtype holds exactly (bfloat16: 8 significant bits)
_EXACT_INT = {"float16": 1 << 11, "bfloat16": 1 << 8, "float32": 1 << 24, "float64": 1 << 53}


def concrete(x) -> bool:
    return isinstance(x, (bool, int, float, np.integer, np.floating, np.bool_)) or (
        isinstance(x, sympy.Basic) and x.is_Number)


def _pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def exact(x):
    """Normalize an element: integral numbers become ints, dyadic floats exact rationals."""
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        if not math.isfinite(x):
            return x
        if x == int(x):
            return int(x)
        r = sympy.Rational(x)
        return r if _pow2(int(r.q)) and r.q <= (1 << 24) else x
    if isinstance(x, sympy.Basic):
        if x.is_Integer:
            return int(x)
        if x.is_Float:
            return exact(float(x))
    return x


def as_number(x, dtype):
    """A concrete element as a python number in `dtype` (rounded like the run time would)."""
    x = exact(x)
    if isinstance(x, sympy.Rational):
        x = float(x)
    if dtype in _NP:
        return exact(_NP[dtype](x).item())
    if dtype == "bfloat16":
        import torch
        return exact(float(torch.tensor(float(x), dtype=torch.bfloat16)))
    return x


def dyadic(x) -> bool:
    """An element float arithmetic handles exactly: its denominator is a power of two."""
    x = exact(x)
    if isinstance(x, float):
        return False
    if isinstance(x, (bool, int)):
        return True
    return _pow2(int(sympy.denom(sympy.together(x)))) if x.free_symbols else _pow2(int(sympy.Rational(x).q))


def to_float(x, dtype):
    """Cast one element to a float dtype: exact integers stay exact, big ones only when concrete."""
    x = exact(x)
    if concrete(x):
        return as_number(x, dtype)
    if isinstance(x, sympy.Basic) and x.is_integer and dtype in ("float32", "float64"):
        return x  # dims far below 2**24
    return x if dtype == "float64" else None


def to_int(x):
    """Cast one element to an integer (ONNX Cast truncates toward zero); None when undecidable."""
    x = exact(x)
    if isinstance(x, (bool, int)):
        return int(x)
    if isinstance(x, float):
        return int(x) if math.isfinite(x) else None
    if x.is_integer:
        return norm(x)
    if x.is_nonnegative:
        return norm(sympy.floor(x))
    if x.is_nonpositive:
        return norm(sympy.ceiling(x))
    return None


def rounded(x, how: str):
    """Floor / Ceil / Round of one element (Round: half to even, concrete or integer only)."""
    x = exact(x)
    if isinstance(x, (bool, int)):
        return int(x)
    if concrete(x):
        f = float(x)
        return exact({"floor": math.floor, "ceil": math.ceil, "round": round}[how](f))
    if x.is_integer:
        return x
    if how == "round":
        return None
    return norm(sympy.floor(x) if how == "floor" else sympy.ceiling(x))


def float_binary(fn, a, b, dtype):
    """fn on two float elements: numpy in the dtype when concrete, exact sympy otherwise."""
    a, b = exact(a), exact(b)
    if concrete(a) and concrete(b):
        if dtype not in _NP and dtype != "bfloat16":
            return None
        try:
            with np.errstate(all="raise"):
                r = fn(_NP.get(dtype, np.float32)(float(a)), _NP.get(dtype, np.float32)(float(b)))
        except (FloatingPointError, ZeroDivisionError):
            return None
        return as_number(r, dtype)
    if not (dyadic(a) and dyadic(b)):
        return None
    r = fn(sympy.sympify(a), sympy.sympify(b))
    return exact(r) if r is not None else None


def elementwise(fn, *xs):
    """fn over broadcast object arrays; None when any element is unknown (fn gave None)."""
    out = np.asarray(np.frompyfunc(fn, len(xs), 1)(*xs), dtype=object)
    if any(x is None for x in out.reshape(-1)):
        return None
    return out
