"""Evaluate dim expressions (strings written by the builder) without sympy, safely."""
from __future__ import annotations

import ast
import contextlib
import gc
import math
import threading
from functools import lru_cache

_FUNCS = {"floor": math.floor, "ceiling": math.ceil, "Max": max, "Min": min,
          "Mod": lambda a, b: a % b, "Abs": abs}
_OK_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Name, ast.Constant, ast.Call, ast.Load,
             ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.USub, ast.UAdd)


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


@lru_cache(maxsize=4096)
def compile_dim(expr: str):
    """Compile a dim expression into a function of a symbol environment (whitelisted syntax)."""
    with _ast_guard():
        tree = ast.parse(expr, mode="eval")
        code = compile(tree, "<dim>", "eval")
    for n in ast.walk(tree):
        if not isinstance(n, _OK_NODES):
            raise ValueError(f"illegal dim expression: {expr!r}")
        if isinstance(n, ast.Call) and not (isinstance(n.func, ast.Name) and n.func.id in _FUNCS):
            raise ValueError(f"illegal function in dim expression: {expr!r}")

    def f(env):
        v = eval(code, {"__builtins__": {}, **_FUNCS}, env)  # noqa: S307 - AST whitelisted above
        return int(round(v)) if isinstance(v, float) else int(v)
    f.raw = lambda env: eval(code, {"__builtins__": {}, **_FUNCS}, env)  # noqa: S307
    return f


def eval_dim(d, env) -> int:
    return d if isinstance(d, int) else compile_dim(d)(env)


def eval_value(d, env, dtype: str = "int64"):
    """One element of a shape value of `dtype`: rounded to an int unless the dtype is a float."""
    if not dtype.startswith(("float", "bfloat")):
        return eval_dim(d, env)
    return d if isinstance(d, (int, float)) else compile_dim(d).raw(env)


def eval_shape(shape, env) -> tuple:
    return tuple(eval_dim(d, env) for d in shape)


def symbols_of(d) -> set:
    if isinstance(d, int):
        return set()
    with _ast_guard():
        tree = ast.parse(d, mode="eval")
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id not in _FUNCS}
