"""Fused reductions: LayerNorm / RMSNorm (+ prologue, + epilogue), Softmax / LogSoftmax, and fused.Reduce
(a reduction of a pointwise prologue, then an optional finishing map: L1, L2, LogSumExp ...).

A norm's prologue (attr "prologue") is an expression over (x, extras...) computing what is normalized, of
x's dtype (passes.quant.skip_norm: a residual add moved out of the GEMM before it); its epilogue is over
(normalized y, extras...); a side expression (attr "side", over the same inputs as the prologue, applied
to the prologue's result) is a second output: the residual stream's Q that the next residual reads.

Axes are stored normalized to negative indices (-1 = last) so a layer's attributes alone say
whether the reduced axes are the trailing ones (what the row kernels need)."""
from __future__ import annotations

import torch

from ...ir.symbolic import broadcast
from ..reduce import REDUCE_FNS
from ..registry import infer, reference
from .epilogue import apply_epilogue, epilogue_info
from .expr import eval_expr, expr_dtype

_HALF = (torch.float16, torch.bfloat16)


def _up(x):
    return x.float() if x.dtype in _HALF else x


def _dims(axes, rank):
    return tuple(sorted(a % rank for a in axes))


def _prologue(x, prologue, extra, opset):
    return x if not prologue else eval_expr(prologue, [x, *extra], opset).to(x.dtype)


def _with_side(y, x, side, extra, opset):
    return y if not side else (y, eval_expr(side, [x, *extra], opset))


@reference("fused.LayerNorm")
def layernorm_ref(x, scale=None, bias=None, *extra, axis=-1, epsilon=1e-5, epilogue=None, prologue=None,
                  side=None, _opset=17):
    x = _prologue(x, prologue, extra, _opset)
    dims = tuple(range(axis % x.dim(), x.dim()))
    xf = _up(x)
    mean = xf.mean(dims, keepdim=True)
    d = xf - mean
    y = d * torch.rsqrt((d * d).mean(dims, keepdim=True) + epsilon)
    y = _affine(y, scale, bias).to(x.dtype)
    return _with_side(apply_epilogue(y, epilogue, extra, _opset), x, side, extra, _opset)


@reference("fused.RMSNorm")
def rmsnorm_ref(x, scale=None, *extra, axis=-1, epsilon=1e-6, epilogue=None, prologue=None, side=None,
                _opset=17):
    x = _prologue(x, prologue, extra, _opset)
    dims = tuple(range(axis % x.dim(), x.dim()))
    xf = _up(x)
    y = xf * torch.rsqrt((xf * xf).mean(dims, keepdim=True) + epsilon)
    y = _affine(y, scale, None).to(x.dtype)
    return _with_side(apply_epilogue(y, epilogue, extra, _opset), x, side, extra, _opset)


def _affine(y, scale, bias):
    if scale is not None:
        y = y * _up(scale)
    if bias is not None:
        y = y + _up(bias)
    return y


@infer("fused.LayerNorm")
def layernorm_infer(node):
    return _norm_info(node, 3)


@infer("fused.RMSNorm")
def rmsnorm_infer(node):
    return _norm_info(node, 2)


def _norm_info(node, n_params):
    x, extra = node.inputs[0], node.inputs[n_params:]
    out = [epilogue_info(x.dtype, x.shape, node.attrs.get("epilogue"), extra)]
    if node.attrs.get("side"):
        out.append((expr_dtype(node.attrs["side"], [x.dtype] + [v.dtype for v in extra]), x.shape))
    return out


def _softmax(fn):
    def ref(x, axes=(-1,)):
        dims = _dims(axes, x.dim())
        if len(dims) == 1:
            return fn(x, dims[0])
        lead = x.shape[:dims[0]]
        return fn(x.reshape(*lead, -1), -1).reshape(x.shape)
    return ref


reference("fused.Softmax")(_softmax(lambda x, a: torch.softmax(x, a)))
reference("fused.LogSoftmax")(_softmax(lambda x, a: torch.log_softmax(x, a)))
infer("fused.Softmax", "fused.LogSoftmax")(lambda node: [(node.inputs[0].dtype, node.inputs[0].shape)])
# kind -> (pre-map, reduction, post-map): the same functions as the ONNX Reduce* references
_KIND_OP = {"sum": "ReduceSum", "mean": "ReduceMean", "max": "ReduceMax", "min": "ReduceMin",
            "prod": "ReduceProd", "l1": "ReduceL1", "l2": "ReduceL2", "sumsquare": "ReduceSumSquare",
            "logsum": "ReduceLogSum", "logsumexp": "ReduceLogSumExp"}
REDUCE_KINDS = {kind: REDUCE_FNS[op] for kind, op in _KIND_OP.items()}


@reference("fused.Reduce")
def reduce_ref(*inputs, kind, axes, keepdims=1, prologue=None, _opset=17):
    """kind-reduce(prologue(inputs)) over `axes`; half inputs accumulate in float32."""
    x = eval_expr(prologue, inputs, _opset) if prologue else inputs[0]
    pre, red, post = REDUCE_KINDS[kind]
    y = _up(x) if kind not in ("max", "min") else x
    y = pre(y) if pre is not None else y
    y = red(y, _dims(axes, x.dim()), bool(keepdims))
    y = post(y) if post is not None else y
    return y.to(x.dtype)


@infer("fused.Reduce")
def reduce_infer(node):
    prologue = node.attrs.get("prologue")
    ins = node.inputs
    dt = expr_dtype(prologue, [v.dtype for v in ins]) if prologue else ins[0].dtype
    shp = broadcast(*[v.shape for v in ins]) if prologue else ins[0].shape
    dims = _dims(node.attrs["axes"], len(shp))
    if node.attrs.get("keepdims", 1):
        out = tuple(1 if i in dims else d for i, d in enumerate(shp))
    else:
        out = tuple(d for i, d in enumerate(shp) if i not in dims)
    return [(dt, out)]
