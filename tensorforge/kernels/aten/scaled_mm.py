"""Tactic "scaled_mm": an FP8 (e4m3) fused.QGemm / fused.QMatMul as one cuBLASLt FP8 GEMM through
torch._scaled_mm, whose epilogue applies the scales (and the bias when its output is FP16/BF16),
then the follow-up for what it cannot fuse (an FP32 bias, per-channel scales in "post" mode, the
layer's epilogue, dequantized residuals, the output Q) as one expression: torch ops here, one
generated pointwise kernel in the triton source's variant (tactic triton:scaled_mm_pw).

cuBLASLt's FP8 rules on Hopper, as torch 2.11 checks them: A row-major and B column-major (the
"TN" layout: an [N, K] weight is passed as its transposed view; a [K, N] one is copied once to
K-major), K and N multiples of 16, fp32 scales: tensorwise = two 1-element tensors, rowwise =
scale_a (M, 1) and scale_b (1, N) (a per-tensor activation scale with per-channel weight scales is
rejected, so the activation scale is broadcast to (M, 1)); a bias only with FP16/BF16 output, of
that type. Params: scale (tensorwise | rowwise | post: tensorwise GEMM in FP32, per-channel weight
scales applied in the follow-up), mm_out (the GEMM's output type: float16 | bfloat16 | float32 |
float8e4m3fn = the output Q done by the GEMM: tensorwise, no epilogue; the output scale is folded
into scale_a and the bias, as torch 2.10-2.11 ignores scale_result on CUDA, pytorch#190449, and its
CPU path divides by it), fast_accum (Hopper's FP8 fast accumulation)."""
from __future__ import annotations

import torch

from ... import dtypes
from ..device import is_cuda
from ..quant_gemm import cached, capturing, followup_expr, problem, weight_kn
from ..registry import tactic_family
from . import tactic
from .epilogue import compile_expr

LOW = ("float16", "bfloat16")


def supported_here(device) -> tuple[bool, bool]:
    """(FP8 GEMMs, rowwise scales) on this CUDA device: sm_89+ and sm_90+ (pytorch#130359)."""
    if not is_cuda(device) or not torch.cuda.is_available() or not hasattr(torch, "_scaled_mm"):
        return False, False
    cap = torch.cuda.get_device_capability(device)
    return cap >= (8, 9), cap >= (9, 0)


class ScaledMM:
    """fn(inputs[, outs]) -> [output] of one layer (the reference for inputs it cannot take). The
    follow-up (quant_gemm.followup_expr) runs as torch ops, or through `finish(args, outs)` when
    given (the triton source's one fused pointwise kernel)."""

    def __init__(self, layer, attrs, params, ref, opset, device, finish=None):
        self.attrs, self.ref = attrs, ref
        self.kmajor = layer.type == "fused.QGemm" and bool(attrs.get("transB", 0))
        self.scale = params.get("scale", "tensorwise")
        self.mm_out = dtypes.to_torch(params.get("mm_out", "float32"))
        self.out_dtype = dtypes.to_torch(params.get("out_dtype", "float32"))  # the layer's output type
        self.fast = bool(params.get("fast_accum", 0))
        self.a_scale = float(attrs.get("x_scale", 1.0)) * float(attrs.get("alpha", 1.0))
        fp8_out = self.mm_out == torch.float8_e4m3fn
        if fp8_out:  # the output Q folded into the activation scale
            self.a_scale /= float(attrs["out_q"][0])
        has_bias = len(layer.inputs) > 2 and layer.inputs[2] is not None
        self.bias_in_mm = has_bias and self.scale != "post" and \
            self.mm_out in (torch.float16, torch.bfloat16, torch.float8_e4m3fn)
        self.expr = None if fp8_out else \
            followup_expr(attrs, len(layer.inputs) - 4, self.scale == "post", has_bias and not self.bias_in_mm)
        self.finish = finish
        if self.expr is not None and finish is None:
            epi = compile_expr(self.expr, opset, device)
            self.finish = lambda args, outs=None: [epi(args)]
        self.cache: dict = {}

    def _scales(self, ws, m, dev):
        key = ("sa", m if self.scale == "rowwise" else 0, dev)
        sa = self.cache.get(key)
        if sa is None:
            sa = torch.full((m, 1) if self.scale == "rowwise" else (), self.a_scale, dtype=torch.float32, device=dev)
            if not capturing(dev):
                self.cache[key] = sa
        if self.scale == "rowwise":
            return sa, cached(self.cache, ws, "sb", lambda t: t.float().reshape(1, -1).contiguous())
        if self.scale == "post":
            return sa, cached(self.cache, ws, "one", lambda t: torch.ones((), dtype=torch.float32, device=t.device))
        return sa, cached(self.cache, ws, "sb", lambda t: t.float().reshape(()).contiguous())

    def _bias(self, bias):
        """The bias as cuBLASLt takes it: of the output's type (FP16 for an FP8 output, divided by
        the output scale as the product is)."""
        if self.mm_out == torch.float8_e4m3fn:
            div = float(self.attrs["out_q"][0])
            return cached(self.cache, bias, "bias8", lambda t: (t.reshape(-1).float() / div).to(torch.float16))
        return cached(self.cache, bias, "bias", lambda t: t.reshape(-1).to(self.mm_out))

    def __call__(self, inputs, outs=None):
        x, w, bias, ws = (list(inputs) + [None] * 4)[:4]
        if x is None or w is None or x.dtype != torch.float8_e4m3fn or w.dtype != x.dtype or x.numel() == 0:
            return list(self.ref(inputs))
        k = x.shape[-1]
        a = x.reshape(-1, k)
        a = a if a.stride(1) == 1 and a.stride(0) == k else a.contiguous()
        b = weight_kn(w, self.kmajor, self.cache)
        sa, sb = self._scales(ws, a.shape[0], a.device)
        fb = self._bias(bias) if self.bias_in_mm and bias is not None else None
        y = torch._scaled_mm(a, b, sa, sb, bias=fb, out_dtype=self.mm_out, use_fast_accum=self.fast)
        y = y.reshape(tuple(x.shape[:-1]) + (b.shape[1],))
        if self.expr is None:
            return [y if y.dtype == self.out_dtype else y.to(self.out_dtype)]
        args = [y] + ([ws.reshape(-1)] if self.scale == "post" else []) + \
            ([bias.reshape(-1)] if bias is not None and not self.bias_in_mm else []) + list(inputs[4:])
        res = self.finish(args, outs)[0]
        return [res if res.dtype == self.out_dtype else res.to(self.out_dtype)]


def scaled_mm_factory(layer, attrs, opset, device, params):
    """The ScaledMM runner of a layer; params out_dtype is the layer's output type."""
    from ...ops import registry
    op = registry.get(layer.type, layer.domain, layer.name)

    def ref(inputs):
        return op.run(inputs, attrs, opset)
    return ScaledMM(layer, attrs, params, ref, opset, device)


def tactics_for(p, out_q, epilogue, rowwise_ok: bool) -> list[dict]:
    """scaled_mm tactics of a problem (problem() of kernels.quant_gemm), best guesses first."""
    if p is None or p["qtype"] != "float8e4m3fn" or p["k"] % 16 or p["n"] % 16 or 0 in (p["m"], p["n"], p["k"]):
        return []
    out = p["out_dtype"]
    mm = [out] if out in LOW else ["float16", "float32"]
    if out_q or out not in LOW + ("float32",):
        mm = ["float16", "float32"]
    scales = ((["rowwise"] if rowwise_ok else []) + ["post"]) if p["per_channel"] else ["tensorwise"]
    res = []
    for s in scales:
        for dt in (mm if s != "post" else ["float32"]):
            res.append(tactic("scaled_mm", scale=s, mm_out=dt, fast_accum=0, out_dtype=out))
    res.insert(1, tactic("scaled_mm", **{**res[0]["params"], "fast_accum": 1}))
    if out_q and out_q[2] == "float8e4m3fn" and not epilogue and not p["per_channel"]:
        res.append(tactic("scaled_mm", scale="tensorwise", mm_out="float8e4m3fn", fast_accum=0, out_dtype=out))
    for t in res[2:]:  # levels 1-2 time the top 2 / 4 candidates: leave room for the Triton kernel
        t["level"] = 3
    return res


@tactic_family("aten", {"scaled_mm": scaled_mm_factory}, library="CUBLAS_LT")
def scaled_mm_candidates(layer, shapes, device):
    """cuBLASLt FP8 GEMMs of an e4m3 QGemm / QMatMul (CUDA, sm_89+; rowwise scales on sm_90+)."""
    fp8, rowwise = supported_here(device)
    if not fp8 or layer.type not in ("fused.QGemm", "fused.QMatMul"):
        return []
    p = problem(layer, shapes)
    if p is None or any(e["dtype"] not in ("float32", "float16", "bfloat16", "float8e4m3fn", "int8", "uint8")
                        for e in p["extras"]):
        return []
    return tactics_for(p, layer.attrs.get("out_q"), layer.attrs.get("epilogue"), rowwise)

