"""Tactic "scaled_mm": an FP8 (e4m3) fused.QGemm / fused.QMatMul as one cuBLASLt FP8 GEMM through
torch._scaled_mm, whose epilogue applies the scales (and the bias when its output is FP16/BF16),
then a short torch follow-up for what it cannot fuse (an FP32 bias, the layer's epilogue, the
output Q).

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
from ..quant_gemm import cached, capturing, dequant, problem, requant, weight_kn
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
    """fn(inputs) -> [output] of one layer (the reference for inputs it cannot take)."""

    def __init__(self, layer_type, attrs, params, ref, opset, device):
        self.attrs, self.ref = attrs, ref
        self.kmajor = layer_type == "fused.QGemm" and bool(attrs.get("transB", 0))
        self.scale = params.get("scale", "tensorwise")
        self.mm_out = dtypes.to_torch(params.get("mm_out", "float32"))
        self.out_dtype = dtypes.to_torch(params.get("out_dtype", "float32"))  # the layer's output type
        self.fast = bool(params.get("fast_accum", 0))
        self.a_scale = float(attrs.get("x_scale", 1.0)) * float(attrs.get("alpha", 1.0))
        epi = attrs.get("epilogue")
        self.epi = compile_expr(epi, opset, device) if epi else None
        self.extra_q, self.out_q = attrs.get("extra_q") or [], attrs.get("out_q")
        if self.mm_out == torch.float8_e4m3fn:  # the output Q folded into the activation scale
            self.a_scale /= float(self.out_q[0])
        self.cache: dict = {}

    def _scales(self, ws, m, dev):
        sa = self.cache.get(("sa", m if self.scale == "rowwise" else 0, dev))
        if sa is None:
            sa = torch.full((m, 1) if self.scale == "rowwise" else (), self.a_scale, dtype=torch.float32, device=dev)
            if not capturing(dev):
                self.cache[("sa", m if self.scale == "rowwise" else 0, dev)] = sa
        if self.scale == "rowwise":
            return sa, cached(self.cache, ws, "sb", lambda t: t.float().reshape(1, -1).contiguous())
        if self.scale == "post":
            return sa, cached(self.cache, ws, "one", lambda t: torch.ones((), dtype=torch.float32, device=t.device))
        return sa, cached(self.cache, ws, "sb", lambda t: t.float().reshape(()).contiguous())

    def __call__(self, inputs):
        x, w, bias, ws = (list(inputs) + [None] * 4)[:4]
        extras = list(inputs[4:])
        if x is None or w is None or x.dtype != torch.float8_e4m3fn or w.dtype != x.dtype or x.numel() == 0:
            return list(self.ref(inputs))
        k = x.shape[-1]
        a = x.reshape(-1, k)
        a = a if a.stride(1) == 1 and a.stride(0) == k else a.contiguous()
        b = weight_kn(w, self.kmajor, self.cache)
        m, n = a.shape[0], b.shape[1]
        sa, sb = self._scales(ws, m, a.device)
        fp8_out = self.mm_out == torch.float8_e4m3fn
        fuse_bias = bias is not None and (self.mm_out in (torch.float16, torch.bfloat16) or fp8_out) \
            and self.scale != "post"
        fb = None
        if fuse_bias:  # an FP8 output takes an FP16 bias, divided by the output scale as the product is
            bdt, div = (torch.float16, float(self.out_q[0])) if fp8_out else (self.mm_out, 1.0)
            fb = cached(self.cache, bias, str(bdt), lambda t: (t.reshape(-1).float() / div).to(bdt))
        y = torch._scaled_mm(a, b, sa, sb, bias=fb, out_dtype=self.mm_out, use_fast_accum=self.fast)
        shape = tuple(x.shape[:-1]) + (n,)
        if self.mm_out == torch.float8_e4m3fn:
            return [y.reshape(shape)]
        return [self._finish(y.reshape(shape), ws, None if fuse_bias else bias, extras)]

    def _finish(self, y, ws, bias, extras):
        """The follow-up: per-channel scales (post), bias, epilogue, output Q or cast."""
        if self.scale == "post":
            y = y.float() * ws.reshape(-1).float()
        if bias is not None:
            y = y.float() + bias.reshape(-1).float()
        if self.epi is not None:
            ex = [dequant(e, self.extra_q[i] if i < len(self.extra_q) else None) for i, e in enumerate(extras)]
            y = self.epi([y.float(), *ex])
        if self.out_q:
            return requant(y, self.out_q)
        return y.to(self.out_dtype)


def scaled_mm_factory(layer, attrs, opset, device, params):
    """The ScaledMM runner of a layer; params out_dtype is the layer's output type."""
    from ...ops import registry
    op = registry.get(layer.type, layer.domain, layer.name)

    def ref(inputs):
        return op.run(inputs, attrs, opset)
    return ScaledMM(layer.type, attrs, params, ref, opset, device)


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

