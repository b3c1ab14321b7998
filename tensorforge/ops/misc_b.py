"""Bit ops, Det, LRN, Swish/SwiGLU, CumProd, RMSNormalization, NLL / softmax cross-entropy losses."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import ShapeError
from .common import in_info, infer_broadcast, infer_same, norm_axis
from .elementwise import unsigned_safe
from .registry import infer, reference


# ---- bitwise ----------------------------------------------------------------------------------
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


# ---- linear algebra / activations -------------------------------------------------------------
@reference("Det")
def det_ref(x):
    return torch.linalg.det(x.double()).to(x.dtype)


@infer("Det")
def det_infer(node):
    dt, shp = in_info(node, 0)
    return [(dt, tuple(shp[:-2]))]


@reference("LRN")
def lrn_ref(x, size, alpha=0.0001, beta=0.75, bias=1.0):
    """y = x / (bias + alpha/size * sum of x^2 over a channel window)^beta."""
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    sq = F.pad((x.float() ** 2).movedim(1, -1), (lo, hi)).movedim(-1, 1)
    s = sq.unfold(1, size, 1).sum(-1)
    return (x.float() / (bias + alpha / size * s) ** beta).to(x.dtype)


@reference("Swish")
def swish_ref(x, alpha=1.0):
    return x * torch.sigmoid(alpha * x)


@reference("SwiGLU")
def swiglu_ref(a, b, alpha=1.0):
    return a * torch.sigmoid(alpha * a) * b


infer("LRN", "Swish")(infer_same)
infer("SwiGLU")(infer_broadcast)


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


# ---- RMSNormalization (opset 23) ---------------------------------------------------------------
@reference("RMSNormalization")
def rms_norm_ref(x, scale, axis=-1, epsilon=1e-5, stash_type=1):
    ax = axis % x.dim()
    xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    ms = (xf * xf).mean(tuple(range(ax, x.dim())), keepdim=True)
    return (xf * torch.rsqrt(ms + epsilon) * scale.to(xf.dtype)).to(x.dtype)


infer("RMSNormalization")(infer_same)


# ---- losses ------------------------------------------------------------------------------------
def _nll(logp, target, weight=None, ignore_index=None, reduction="mean"):
    """NegativeLogLikelihoodLoss on log-probabilities (N, C, d...) and targets (N, d...)."""
    t = target.to(torch.int64)
    valid = t != ignore_index if ignore_index is not None else torch.ones_like(t, dtype=torch.bool)
    ts = torch.where(valid, t, torch.zeros_like(t))
    loss = -logp.gather(1, ts.unsqueeze(1)).squeeze(1)
    if weight is not None:
        w = weight[ts.clamp(0, weight.shape[0] - 1)]
    else:
        w = torch.ones_like(loss)
    w = torch.where(valid, w, torch.zeros_like(w))
    loss = loss * w
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if weight is not None or ignore_index is not None:
        return loss.sum() / w.sum()
    return loss.mean()


@reference("NegativeLogLikelihoodLoss")
def nll_ref(x, target, weight=None, ignore_index=None, reduction="mean"):
    return _nll(x, target, weight, ignore_index, reduction).to(x.dtype)


@reference("SoftmaxCrossEntropyLoss")
def sce_ref(x, target, weight=None, ignore_index=None, reduction="mean"):
    logp = torch.log_softmax(x.double() if x.dtype == torch.float64 else x.float(), 1)
    loss = _nll(logp, target, weight.to(logp.dtype) if weight is not None else None, ignore_index,
                reduction)
    return loss.to(x.dtype), logp.to(x.dtype)


@infer("NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss")
def loss_infer(node):
    (dt, xs), (_, ts) = in_info(node, 0), in_info(node, 1)
    if len(xs) < 2:
        raise ShapeError(f"{node.op} '{node.name}': input must have rank >= 2")
    out = tuple(ts) if node.attrs.get("reduction", "mean") == "none" else ()
    return [(dt, out), (dt, tuple(xs))][:max(1, len(node.outputs))]


_ = norm_axis


# ---- Lp pooling ---------------------------------------------------------------------------------
@reference("LpPool")
def lppool_ref(x, kernel_shape, auto_pad="NOTSET", ceil_mode=0, dilations=None, p=2, pads=None,
               strides=None, count_include_pad=0):
    """(sum of |x|^p over the window)^(1/p); padding contributes zeros."""
    from .nn import avgpool_ref
    avg = avgpool_ref(x.abs() ** p, kernel_shape, auto_pad, ceil_mode, 1, dilations, pads, strides)
    return (avg * math.prod(kernel_shape)) ** (1.0 / p)


@reference("GlobalLpPool")
def global_lppool_ref(x, p=2):
    return (x.abs() ** p).sum(tuple(range(2, x.dim())), keepdim=True) ** (1.0 / p)
