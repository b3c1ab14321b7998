"""Unary math (exp, log, trig, rounding), Clip, IsNaN/IsInf, CumSum/CumProd."""
from __future__ import annotations

import numpy as np
import torch

from ..ir.symbolic import norm
from .common import infer_same, scalar_int, unary_ref
from .registry import infer, reference, symval
from .symvalue import elementwise, rounded

_MATH = {
    "Erf": torch.erf, "Sqrt": torch.sqrt, "Exp": torch.exp, "Log": torch.log, "Abs": torch.abs,
    "Neg": torch.neg, "Reciprocal": torch.reciprocal, "Floor": torch.floor, "Ceil": torch.ceil,
    "Round": torch.round, "Sign": torch.sign,
    "Sin": torch.sin, "Cos": torch.cos, "Tan": torch.tan, "Asin": torch.asin, "Acos": torch.acos,
    "Atan": torch.atan, "Sinh": torch.sinh, "Cosh": torch.cosh, "Asinh": torch.asinh,
    "Acosh": torch.acosh, "Atanh": torch.atanh,
}
for _op, _fn in _MATH.items():
    reference(_op)(unary_ref(_fn))
infer(*_MATH)(infer_same)


@symval("Neg")
def _sym_neg(node, a):
    return [np.asarray(np.frompyfunc(lambda x: norm(-x) if not isinstance(x, float) else -x, 1, 1)(a),
                       dtype=object)]


def _sym_round(how):
    """Floor/Ceil/Round of float shape values (e.g. Floor(Cast(dim) / 2))."""
    return lambda node, a: (lambda r: None if r is None else [r])(elementwise(lambda x: rounded(x, how), a))


symval("Floor")(_sym_round("floor"))
symval("Ceil")(_sym_round("ceil"))
symval("Round")(_sym_round("round"))


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


@reference("IsNaN")
def isnan(x):
    return torch.isnan(x)


@reference("IsInf")
def isinf(x, detect_negative=1, detect_positive=1):
    return (torch.isposinf(x) & bool(detect_positive)) | (torch.isneginf(x) & bool(detect_negative))


infer("Clip")(infer_same)

infer("IsNaN", "IsInf")(lambda node: [("bool", node.inputs[0].shape)])


@reference("CumSum", host_inputs=(1,))
def cumsum_ref(x, axis, exclusive=0, reverse=0):
    ax = scalar_int(axis) % x.dim()
    y = torch.flip(x, (ax,)) if reverse else x
    if exclusive:
        n = y.shape[ax]
        y = torch.cat([torch.zeros_like(y.narrow(ax, 0, min(1, n))), y.narrow(ax, 0, max(n - 1, 0))], ax)
    y = torch.cumsum(y, ax, dtype=x.dtype)
    return torch.flip(y, (ax,)) if reverse else y


@infer("CumSum")
def cumsum_infer(node):
    return [(node.inputs[0].dtype, node.inputs[0].shape)]


@reference("CumProd", host_inputs=(1,))
def cumprod_ref(x, axis, exclusive=0, reverse=0):
    ax = int(axis.reshape(-1)[0]) % x.dim()
    y = torch.flip(x, (ax,)) if reverse else x
    if exclusive:
        n = y.shape[ax]
        y = torch.cat([torch.ones_like(y.narrow(ax, 0, min(1, n))), y.narrow(ax, 0, max(n - 1, 0))], ax)
    y = torch.cumprod(y, ax, dtype=x.dtype)
    return torch.flip(y, (ax,)) if reverse else y


infer("CumProd")(infer_same)
