"""Logic and comparison ops, Where, bitwise ops and BitShift."""
from __future__ import annotations

import numpy as np
from ..ir.lazy import sympy
import torch

from .arith import unsigned_safe
from .common import infer_bool_broadcast, infer_broadcast, infer_same, unary_ref
from .registry import infer, reference, symval
from .symvalue import FLOATS, elementwise, exact

reference("Not")(unary_ref(torch.logical_not))
infer("Not")(infer_same)

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


@symval("Where")
def _sym_where(node, c, a, b):
    """Select on a known condition (bools, or the 0/1 a symbolic Equal/Less leaves for a bool tensor)."""
    ok = (bool, np.bool_) if node.inputs[0].dtype != "bool" else (bool, np.bool_, int, np.integer)
    if any(not isinstance(x, ok) or isinstance(x, sympy.Basic) for x in c.reshape(-1)):
        return None
    return [np.asarray(np.where(c.astype(bool), a, b), dtype=object)]


# symbolic logic (shape-condition arithmetic in expanded function bodies)
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


def _sym_eq(a, b):
    a, b = exact(a), exact(b)
    r = sympy.Eq(a, b)
    return bool(r) if not isinstance(r, sympy.Eq) else None


@symval("Equal")
def _sym_equal(node, a, b):
    """Equal of shape values, int or float (an exact float value of a dim compares as the dim)."""
    if node.inputs[0].dtype not in ("int64", "int32") + FLOATS:
        return None
    out = elementwise(_sym_eq, a, b)
    return None if out is None else [out]


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


def _bits(dt) -> int:
    return {torch.uint8: 8, torch.int8: 8, torch.uint16: 16, torch.int16: 16, torch.uint32: 32,
            torch.int32: 32, torch.uint64: 64, torch.int64: 64}[dt]


@reference("BitShift")
def bitshift_ref(a, b, direction):
    """Shifts by >= the bit width give 0 (or -1 for negative signed right shifts)."""
    dt = a.dtype
    width = _bits(dt)
    a, b = torch.broadcast_tensors(a, b)
    wide = dt in (torch.uint16, torch.uint32)
    x = a.to(torch.int64) if wide else a.view(torch.int64) if dt == torch.uint64 else a
    s = b.to(torch.int64) if b.dtype in (torch.uint16, torch.uint32) else \
        b.view(torch.int64) if b.dtype == torch.uint64 else b.to(torch.int64)
    ok = (s >= 0) & (s < width)
    sc = torch.where(ok, s, torch.zeros_like(s)).to(x.dtype)
    if direction == "LEFT":
        y = torch.where(ok, x << sc, torch.zeros_like(x))
    elif dt == torch.uint64:  # logical shift on the int64 view: mask off the copied sign bits
        shifted = x >> sc
        keep = (torch.ones_like(x) << (64 - sc).clamp(max=63)) - 1  # low 64-s bits
        y = torch.where(ok, torch.where(sc > 0, shifted & keep, x), torch.zeros_like(x))
    else:
        fill = torch.where(x < 0, -torch.ones_like(x), torch.zeros_like(x))
        y = torch.where(ok, x >> sc, fill)
    if wide:
        return (y & ((1 << width) - 1)).to(dt)
    return y.view(torch.uint64) if dt == torch.uint64 else y.to(dt)


reference("BitwiseAnd")(unsigned_safe(torch.bitwise_and))
reference("BitwiseOr")(unsigned_safe(torch.bitwise_or))
reference("BitwiseXor")(unsigned_safe(torch.bitwise_xor))


@reference("BitwiseNot")
def bitwise_not_ref(x):
    if x.dtype in (torch.uint16, torch.uint32):
        return (~x.to(torch.int64) & ((1 << _bits(x.dtype)) - 1)).to(x.dtype)
    if x.dtype == torch.uint64:
        return (~x.view(torch.int64)).view(torch.uint64)
    return torch.bitwise_not(x)


infer("BitShift", "BitwiseAnd", "BitwiseOr", "BitwiseXor")(infer_broadcast)
infer("BitwiseNot")(infer_same)
