"""Softmax, LogSoftmax, Hardmax (flattened to 2D before opset 13)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .common import infer_same
from .registry import infer, reference


def _softmax_2d(fn):
    """Opsets 1-12: flatten to 2D at axis (default 1), normalize the rows."""
    def ref(x, axis=None):
        axis = 1 if axis is None else axis
        ax = axis % x.dim() if x.dim() else 0
        shp = x.shape
        return fn(x.reshape(int(math.prod(shp[:ax])), -1), -1).reshape(shp)
    return ref


def _softmax_axis(fn):
    """Opset 13+: normalize along axis (default -1)."""
    def ref(x, axis=None):
        return fn(x, -1 if axis is None else axis)
    return ref


_FNS = {
    "Softmax": lambda x, a: torch.softmax(x, a),
    "LogSoftmax": lambda x, a: torch.log_softmax(x, a),
    "Hardmax": lambda x, a: F.one_hot(x.argmax(a), x.shape[a]).movedim(-1, a % x.dim()).to(x.dtype),
}
for _op, _fn in _FNS.items():
    reference(_op)(_softmax_2d(_fn))
    reference(_op, since=13)(_softmax_axis(_fn))
infer(*_FNS)(infer_same)
