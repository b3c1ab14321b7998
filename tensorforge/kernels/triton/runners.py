"""Kernel callables for triton tactics: each specializes the generated source on the concrete
dtypes and layouts of its inputs at the first call with them, then only launches.

A layout the generated kernels do not cover (non-trailing reduction axes, an unsupported dtype)
runs the op's reference instead, so a tactic is always correct."""
from __future__ import annotations

import logging
import math

import torch

from ...ops.fused.expr import expr_dtype
from .codegen import supported
from .launch import MissingKernel, compile_source, dtype_name, empty, kind_of, next_pow2, operand_strides, strided_args
from .pointwise import Signature, pointwise_source
from .rowwise import RowSignature, norm_source, reduce_source, softmax_source
from .upsample_views import indexed_views

INF = float("inf")
log = logging.getLogger("tensorforge")
ROW_DTYPES = ("float16", "bfloat16", "float32", "float64", "int32", "int64")


def _out(outs, shape, dt, device):
    """The caller's output buffer when it fits (runtime arena), else a fresh tensor."""
    o = outs[0] if outs else None
    if o is not None and tuple(o.shape) == tuple(shape) and dtype_name(o) == dt and o.is_contiguous():
        return o
    return empty(shape, dt, device)


class _Runner:
    """Caches one launch plan per input signature (dtypes, shapes, strides)."""

    takes_out = True  # writes into the output buffers it is given (no copy in the runtime)

    def __init__(self, attrs, params, fallback):
        self.attrs, self.params, self.fallback = attrs, dict(params), fallback
        self.plans = {}

    def __call__(self, inputs, outs=None):
        key = tuple(None if t is None else (t.dtype, tuple(t.shape), t.stride()) for t in inputs)
        plan = self.plans.get(key)
        if plan is None:
            plan = self.plans[key] = self.plan(inputs)
        if plan is None:
            return list(self.fallback(inputs))
        try:
            return plan(inputs, outs)
        except MissingKernel as e:  # the engine has no cubin for this signature and there is no Triton
            log.warning("%s; running the reference for this input signature", e)
            self.plans[key] = None
            return list(self.fallback(inputs))

    def launch(self, kernel, grid, args, **meta):
        kernel[grid](*args, num_warps=self.params.get("num_warps", 4), **meta)


class PointwiseRunner(_Runner):
    """fused.Pointwise (attrs: expr, upsample), or any expression over given inputs."""

    def plan(self, inputs):
        expr = self.attrs["expr"]
        in_dt = [dtype_name(t) for t in inputs]
        if not supported(expr, in_dt):
            return None
        ups = self.attrs.get("upsample")
        if ups and any(ups):  # nearest-upsampled inputs: zero-stride views over a split index space
            iv = indexed_views(inputs, ups)
            if iv is None:
                return None
            out_shape, shape, views = iv
            inputs = views(inputs)
        else:
            shape = out_shape = tuple(torch.broadcast_shapes(*[t.shape for t in inputs]))
            views = None
        out_dt = expr_dtype(expr, in_dt)
        kinds = tuple(kind_of(operand_strides(t, shape), shape) for t in inputs)
        n = math.prod(shape)
        rank, dims, strides = strided_args(inputs, shape, kinds)
        sig = Signature(tuple(in_dt), kinds, out_dt, rank, n + 4096 >= 2 ** 31)
        src, consts = pointwise_source(expr, sig)
        kernel = compile_source(src, "tf_pointwise")
        block = int(self.params.get("BLOCK", 1024))
        grid = (triton_cdiv(n, block),)
        extra = dims + strides + [v for _, v in consts]

        def run(ins, outs=None):
            out = _out(outs, out_shape, out_dt, ins[0].device)
            if n:
                self.launch(kernel, grid, list(views(ins) if views else ins) + [out, n] + extra, BLOCK=block)
            return [out]
        return run


def triton_cdiv(a, b):
    return (a + b - 1) // b


def _row_plan(inputs, shape, k):
    """(M, N, kinds, rank, dims, strides) for a row kernel reducing the trailing k dims of shape."""
    split = len(shape) - k
    M, N = math.prod(shape[:split]), math.prod(shape[split:])
    kinds = tuple(kind_of(operand_strides(t, shape), shape, split) for t in inputs)
    rank, dims, strides = strided_args(inputs, shape, kinds)
    return M, N, kinds, rank, dims, strides


def _trailing(axes, rank):
    """k when the (negative-normalized) axes are exactly the last k dims, else None."""
    ax = sorted(a % rank - rank for a in axes) if rank else []
    return len(ax) if ax and ax == list(range(-len(ax), 0)) else None


class SoftmaxRunner(_Runner):
    def __init__(self, attrs, params, fallback, log):
        super().__init__(attrs, params, fallback)
        self.log = log

    def plan(self, inputs):
        x = inputs[0]
        k = _trailing(self.attrs.get("axes", [-1]), x.dim())
        dt = dtype_name(x)
        if k is None or dt not in ("float16", "bfloat16", "float32", "float64") or x.numel() == 0:
            return None
        shape = tuple(x.shape)
        M, N, kinds, rank, dims, strides = _row_plan([x], shape, k)
        sig = RowSignature((dt,), kinds, dt, rank)
        kernel = compile_source(softmax_source(sig, self.log)[0], "tf_softmax")
        bn = next_pow2(N)

        def run(ins, outs=None):
            out = _out(outs, shape, dt, ins[0].device)
            self.launch(kernel, (M,), [ins[0], out, N, -INF] + dims + strides, BLOCK_N=bn)
            return [out]
        return run


class NormRunner(_Runner):
    """fused.LayerNorm / fused.RMSNorm: inputs x, scale?, [bias?,] extras.

    params: ROWS (rows per program, default 1), num_warps, BLOCK_N (the longest row normalized in
    one pass, default 8192; longer rows loop over 4096-element chunks)."""

    def __init__(self, attrs, params, fallback, rms):
        super().__init__(attrs, params, fallback)
        self.rms = rms

    def plan(self, inputs):
        x = inputs[0]
        n_par = 2 if self.rms else 3
        lead = list(inputs[:n_par]) + [None] * (n_par - len(inputs[:n_par]))
        present = [t for t in lead[1:] if t is not None]
        ins = [x] + present + list(inputs[n_par:])
        dts = [dtype_name(t) for t in ins]
        epi, pro, side = self.attrs.get("epilogue"), self.attrs.get("prologue"), self.attrs.get("side")
        x_dt = dts[0]
        if x_dt not in ("float16", "bfloat16", "float32", "float64") or x.numel() == 0:
            return None
        extra_dt = [x_dt] + dts[1 + len(present):]
        if any(e and not supported(e, extra_dt) for e in (epi, pro, side)):
            return None
        side_dt = expr_dtype(side, extra_dt) if side else None
        out_dt = expr_dtype(epi, extra_dt) if epi else x_dt
        shape = tuple(x.shape)
        k = x.dim() - int(self.attrs.get("axis", -1)) % x.dim()
        if any(tuple(torch.broadcast_shapes(t.shape, shape)) != shape for t in ins):
            return None
        M, N, kinds, rank, dims, strides = _row_plan(ins, shape, k)
        sig = RowSignature(tuple(dts), kinds, out_dt, rank)
        cap = int(self.params.get("BLOCK_N", 8192))
        looped = next_pow2(N, 16, 1 << 30) > cap
        if looped and (pro or side):  # the prologue and the side output run in the single-pass kernel only
            return None
        bn = next_pow2(N, 16, min(cap, 4096) if looped else cap)
        rows = next_pow2(int(self.params.get("ROWS", 1)), 1, max(1, 16384 // bn))  # <= 16K elements
        rows = next_pow2(M, 1, rows)
        src, consts = norm_source(sig, self.rms, lead[1] is not None, not self.rms and lead[2] is not None, epi,
                                  looped=looped, prologue=pro, side=side, side_dt=side_dt)
        kernel = compile_source(src, "tf_norm")
        eps = float(self.attrs.get("epsilon", 1e-5))
        extra = dims + strides + [v for _, v in consts]
        grid = (triton_cdiv(M, rows),)

        def run(inputs_, outs=None):
            xs = [t for t in inputs_ if t is not None]
            res = [_out(outs, shape, out_dt, xs[0].device)]
            if side:  # the second output (out1)
                res.append(_out(outs[1:] if outs else None, shape, side_dt, xs[0].device))
            self.launch(kernel, grid, xs + res + [M, N, eps] + extra, ROWS=rows, BLOCK_N=bn)
            return res
        return run


class ReduceRunner(_Runner):
    def plan(self, inputs):
        kind, pro = self.attrs["kind"], self.attrs.get("prologue")
        dts = [dtype_name(t) for t in inputs]
        p_dt = expr_dtype(pro, dts) if pro else dts[0]
        if (pro and not supported(pro, dts)) or kind == "prod" or any(d not in ROW_DTYPES for d in dts):
            return None
        if p_dt not in ("float16", "bfloat16", "float32", "float64") and kind not in ("sum",):
            return None
        shape = tuple(torch.broadcast_shapes(*[t.shape for t in inputs]))
        k = _trailing(self.attrs["axes"], len(shape))
        if k is None or math.prod(shape) == 0:
            return None
        M, N, kinds, rank, dims, strides = _row_plan(inputs, shape, k)
        sig = RowSignature(tuple(dts), kinds, p_dt, rank)
        src, consts = reduce_source(sig, kind, pro)
        kernel = compile_source(src, "tf_reduce")
        keep = self.attrs.get("keepdims", 1)
        out_shape = shape[:len(shape) - k] + ((1,) * k if keep else ())
        bn = next_pow2(N)
        extra = dims + strides + [v for _, v in consts]

        def run(ins, outs=None):
            out = _out(outs, out_shape, p_dt, ins[0].device)
            self.launch(kernel, (M,), list(ins) + [out, N, -INF, INF] + extra, BLOCK_N=bn)
            return [out]
        return run


class EpilogueRunner(_Runner):
    """Conv / Gemm / MatMul anchors: the torch op without its epilogue, then one pointwise kernel.

    With param nhwc_ok (a 4-D conv, CUDA): the conv runs channels-last (its input made so when it is
    not: cuDNN's fast FP16 layout) and the epilogue runs over the NHWC-ordered views of the conv's
    result and of its 4-D extras, so it writes an NHWC output (the layout chain's buffer in place)
    and the next layer of the chain reads it without a reformat. Session 9: a quantized ResNet-50's
    FP16 stem with its output Q took 1.05 ms this way in NCHW, with the int8 MaxPool after it 0.35 ms
    (its NCHW path); the FP16 engine's channels-last stem conv takes 0.33 ms."""

    def __init__(self, attrs, params, fallback, anchor, n_lead):
        super().__init__(attrs, params, fallback)
        self.anchor, self.n_lead = anchor, n_lead
        self.nhwc = bool(params.get("nhwc_ok"))
        self.pw = PointwiseRunner({"expr": attrs["epilogue"]}, params, None)

    def _epilogue(self, ins, outs):
        """The pointwise kernel over ins (None when it cannot run them)."""
        key = tuple((t.dtype, tuple(t.shape), t.stride()) for t in ins)
        plan = self.pw.plans.get(key, False)
        if plan is False:
            plan = self.pw.plans[key] = self.pw.plan(ins)
        if plan is not None:
            try:
                return plan(ins, outs)
            except MissingKernel as e:
                log.warning("%s; running the reference for this input signature", e)
                self.pw.plans[key] = None
        return None

    def __call__(self, inputs, outs=None):
        lead, extras = list(inputs[:self.n_lead]), list(inputs[self.n_lead:])
        x = lead[0]
        if self.nhwc and x is not None and x.dim() == 4 and all(e is not None and e.dim() <= 4 for e in extras):
            lead[0] = x.contiguous(memory_format=torch.channels_last)
            y = self.anchor(lead)
            if y.dim() == 4:
                def nhwc(t):  # the NHWC-ordered view (lower-rank extras broadcast as 4-D first)
                    return t.reshape((1,) * (4 - t.dim()) + tuple(t.shape)).permute(0, 2, 3, 1)
                o = outs[0] if outs and outs[0] is not None and outs[0].dim() == 4 else None
                ov = nhwc(o) if o is not None else None
                res = self._epilogue([nhwc(y)] + [nhwc(e) for e in extras], [ov] if ov is not None else None)
                if res is not None:
                    # written into o's NHWC view: o itself holds the result (compared by identity: with a
                    # batch of 1 the view's reshape may give the size-1 dim another stride, and o.copy_ of
                    # a differently-strided view of its own memory fails)
                    return [o if ov is not None and res[0] is ov else res[0].permute(0, 3, 1, 2)]
                return list(self.fallback(inputs))
        else:
            y = self.anchor(lead)
        res = self._epilogue([y] + extras, outs)
        return res if res is not None else list(self.fallback(inputs))

