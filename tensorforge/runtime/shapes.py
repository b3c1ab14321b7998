"""Evaluate dim expressions (strings written by the builder) without sympy, safely.

An expression is parsed once into a tree of closures over a whitelisted syntax (numbers, names,
+ - * / // % **, floor/ceiling/Max/Min/Mod/Abs); every intermediate value is bounded so that a
crafted engine header (`9**9**9`, `2**10**10`) is refused at once instead of hanging the process."""
from __future__ import annotations

import ast
import contextlib
import gc
import math
import operator
import threading
from functools import lru_cache

from ..errors import EngineFormatError

MAX_EXPR_CHARS = 4096  # longer than any expression the builder writes
MAX_VALUE = 2**62  # no tensor dim or intermediate value may exceed this magnitude
MAX_EXPONENT = 64

_FUNCS = {"floor": (1, math.floor), "ceiling": (1, math.ceil), "Max": (None, max), "Min": (None, min),
          "Mod": (2, lambda a, b: _mod(a, b)), "Abs": (1, abs)}


class DimError(EngineFormatError):
    """A dim expression that is malformed or whose value is out of bounds."""


def _check(v, expr):
    if isinstance(v, float) and not math.isfinite(v):
        raise DimError(f"dim expression {expr!r} is not finite")
    if abs(v) > MAX_VALUE:
        raise DimError(f"dim expression {expr!r} exceeds {MAX_VALUE} in magnitude")
    return v


def _mod(a, b):
    if b == 0:
        raise ZeroDivisionError
    return a % b


def _pow(a, b, expr):
    if isinstance(b, float) or not 0 <= b <= MAX_EXPONENT:
        raise DimError(f"dim expression {expr!r}: exponent {b!r} is out of range 0..{MAX_EXPONENT}")
    if isinstance(a, int) and abs(a) > 1 and (abs(a).bit_length() - 1) * b > 63:
        raise DimError(f"dim expression {expr!r} exceeds {MAX_VALUE} in magnitude")
    return a ** b


_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: _mod}
_UNOPS = {ast.USub: operator.neg, ast.UAdd: operator.pos}

_AST_LOCK = threading.Lock()


@contextlib.contextmanager
def _ast_guard():
    """Serialize parse/compile and hold garbage collection off meanwhile.

    CPython 3.11 before 3.11.8 keeps the AST constructor's recursion depth in interpreter-wide state
    (gh-106905): a collection inside ast.parse/compile runs Python finalizers and callbacks, where
    another thread (another context planning its shapes) can parse too and corrupt that depth
    (SystemError "recursion depth mismatch" or RecursionError). Without collections no Python code
    runs inside the constructor, so no other thread runs; the lock orders our own parses."""
    with _AST_LOCK:
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            yield
        finally:
            if was_enabled:
                gc.enable()


def _parse(expr) -> ast.Expression:
    if not isinstance(expr, str):
        raise DimError(f"dim {expr!r} is neither an integer nor an expression string")
    if len(expr) > MAX_EXPR_CHARS:
        raise DimError(f"dim expression of {len(expr)} characters exceeds {MAX_EXPR_CHARS}")
    try:
        with _ast_guard():
            return ast.parse(expr, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise DimError(f"illegal dim expression: {expr[:80]!r}") from None


def _node(n, expr):
    """A closure env -> value for one AST node (whitelisted node types only)."""
    if isinstance(n, ast.Constant) and type(n.value) in (int, float):
        v = _check(n.value, expr)
        return lambda env: v
    if isinstance(n, ast.Name) and n.id not in _FUNCS:
        name = n.id

        def lookup(env):
            if name not in env:  # NameError: callers treat it as "known only after an inference"
                raise NameError(f"dim expression {expr!r}: unknown symbol {name!r}")
            return env[name]
        return lookup
    if isinstance(n, ast.UnaryOp) and type(n.op) in _UNOPS:
        op, a = _UNOPS[type(n.op)], _node(n.operand, expr)
        return lambda env: op(a(env))
    if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Pow):
        a, b = _node(n.left, expr), _node(n.right, expr)
        return lambda env: _check(_pow(a(env), b(env), expr), expr)
    if isinstance(n, ast.BinOp) and type(n.op) in _BINOPS:
        op, a, b = _BINOPS[type(n.op)], _node(n.left, expr), _node(n.right, expr)
        return lambda env: _check(op(a(env), b(env)), expr)
    if (isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in _FUNCS and not n.keywords
            and n.args):
        arity, fn = _FUNCS[n.func.id]
        if arity is not None and len(n.args) != arity:
            raise DimError(f"dim expression {expr!r}: {n.func.id} takes {arity} argument(s)")
        args = [_node(x, expr) for x in n.args]
        return lambda env: _check(fn(*[x(env) for x in args]), expr)
    raise DimError(f"illegal dim expression: {expr[:80]!r}")


def _guarded(f, expr, raw=False):
    def run(env):
        try:
            v = f(env)
        except ZeroDivisionError:
            raise DimError(f"dim expression {expr!r} divides by zero") from None
        except (OverflowError, TypeError, ValueError) as e:
            raise DimError(f"dim expression {expr!r} cannot be evaluated ({e})") from None
        if raw:
            return v
        return int(round(v)) if isinstance(v, float) else int(v)
    return run


@lru_cache(maxsize=4096)
def compile_dim(expr: str):
    """Compile a dim expression into a function of a symbol environment; DimError if it is illegal.
    Constant expressions are evaluated here, so a bad constant is refused before any use."""
    tree = _parse(expr)
    try:
        f = _guarded(_node(tree.body, expr), expr)
    except RecursionError:
        raise DimError(f"dim expression nested too deeply: {expr[:80]!r}") from None
    if not symbols_of(expr):
        v = f({})
        return lambda env: v
    return f


@lru_cache(maxsize=4096)
def compile_value(expr: str):
    """compile_dim without the rounding: a float shape value (Cast(dim, FLOAT) / 2) keeps its fraction."""
    tree = _parse(expr)
    try:
        return _guarded(_node(tree.body, expr), expr, raw=True)
    except RecursionError:
        raise DimError(f"dim expression nested too deeply: {expr[:80]!r}") from None


def eval_value(d, env, dtype: str = "int64"):
    """One element of a shape value of `dtype`: rounded to an int unless the dtype is a float."""
    if not dtype.startswith(("float", "bfloat")):
        return eval_dim(d, env)
    return d if type(d) in (int, float) else compile_value(d)(env)


def eval_dim(d, env) -> int:
    return d if type(d) is int else compile_dim(d)(env)


def eval_shape(shape, env) -> tuple:
    return tuple(eval_dim(d, env) for d in shape)


@lru_cache(maxsize=4096)
def _symbols(d: str) -> frozenset:
    return frozenset(n.id for n in ast.walk(_parse(d)) if isinstance(n, ast.Name) and n.id not in _FUNCS)


def symbols_of(d) -> set:
    if isinstance(d, int):
        return set()
    return set(_symbols(d))
