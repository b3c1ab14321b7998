"""Symbolic dimensions: a dim is an int or a sympy expression over positive-integer symbols.

Dims are printed to strings for the engine file; the runtime evaluates those strings with
`runtime.shapes.eval_dim` and never imports sympy.
"""
from __future__ import annotations

import re
from functools import lru_cache

from .lazy import sympy

from ..errors import ShapeError

Dim = "int | sympy.Expr"

# Prefix for symbols whose value is only known after a layer runs (NonZero, TopK with runtime k).
DATA_DEPENDENT_PREFIX = "dd_"


@lru_cache(maxsize=None)
def symbol(name: str) -> sympy.Symbol:
    """The positive-integer symbol for a dim name (sanitized to an identifier)."""
    clean = re.sub(r"\W", "_", str(name))
    if not clean or clean[0].isdigit():
        clean = "s_" + clean
    return sympy.Symbol(clean, integer=True, positive=True)


def norm(d):
    """Return a plain int when the expression is a number, else the sympy expression."""
    if isinstance(d, (int,)) and not isinstance(d, bool):
        return d
    if isinstance(d, sympy.Basic):
        if d.is_Integer:
            return int(d)
        return d
    if hasattr(d, "__index__"):
        return int(d)
    raise TypeError(f"not a dim: {d!r}")


def is_static(shape) -> bool:
    return shape is not None and all(isinstance(d, int) for d in shape)


def numel(shape):
    n = 1
    for d in shape:
        n = n * d
    return norm(n)


def to_str(d) -> str | int:
    """Serialize a dim: ints stay ints, expressions become Python-syntax strings."""
    d = norm(d)
    return d if isinstance(d, int) else sympy.sstr(d)


def value_str(x) -> str | int:
    """Serialize one element of a symbolic value (ints, exact floats, expressions)."""
    if isinstance(x, float):
        return repr(x)
    if isinstance(x, sympy.Basic) and x.is_Number and not x.is_Integer:
        return repr(float(x))
    return to_str(x)


def free_symbols(shape) -> set[str]:
    out = set()
    for d in shape or ():
        if isinstance(d, sympy.Basic):
            out |= {s.name for s in d.free_symbols}
    return out


def eq(a, b) -> bool:
    """True when two dims are provably equal."""
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    return sympy.expand(sympy.sympify(a) - sympy.sympify(b)) == 0


def broadcast(*shapes):
    """Numpy-style broadcast of several (possibly symbolic) shapes."""
    rank = max(len(s) for s in shapes)
    out = []
    for i in range(rank):
        dims = [s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0]
        res = 1
        for d in dims:
            if isinstance(d, int) and d == 1:
                continue
            if isinstance(res, int) and res == 1:
                res = d
            elif not eq(res, d):
                if isinstance(res, int) and isinstance(d, int):
                    raise ShapeError(f"shapes {list(map(list, shapes))} cannot be broadcast")
                # symbolic vs something else: assume the symbol is 1 or equal; keep the larger-known
                res = d if isinstance(res, sympy.Basic) and isinstance(d, int) else res
        out.append(norm(res))
    return tuple(out)


def fmt_shape(shape) -> str:
    if shape is None:
        return "?"
    return "[" + ",".join(str(to_str(d)) for d in shape) + "]"
