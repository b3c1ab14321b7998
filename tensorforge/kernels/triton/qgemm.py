"""Triton kernel family "qgemm": fused.QGemm / fused.QMatMul with float8 e4m3 or int8 operands in one
kernel: tl.dot on the quantized values (fp32 / int32 accumulator), then dequantize (activation and
per-tensor or per-channel weight scales), bias, the layer's epilogue (activation, residual, with
quantized residuals dequantized) and the output Q fused into the store (qgemm_source). Tactic
scaled_mm_pw: aten's cuBLASLt FP8 GEMM (torch._scaled_mm) followed by one generated pointwise kernel
for what cuBLASLt cannot fuse.

The weight is read K-major (an [N, K] Gemm weight as it is; a [K, N] MatMul weight through a
K-major copy made once), as Hopper's 8-bit wgmma wants both operands. Tactic params: BLOCK_M,
BLOCK_N, BLOCK_K (>= 32: the 8-bit MMA's K), GROUP_M, num_warps, num_stages."""
from __future__ import annotations

import math

import torch

from ..device import is_cuda
from ..quant_gemm import problem, weight_kn
from ..registry import tactic_family
from . import reference, tactic_dict
from .codegen import TL, supported
from .gemm import INT64_FROM, _pow2, _tensor_kind
from .launch import dtype_name
from .runners import _out, _Runner

TYPES = ("fused.QGemm", "fused.QMatMul")
OUT_TYPES = ("float32", "float16", "bfloat16", "float8e4m3fn", "int8", "uint8")
# (BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages); GROUP_M is 8 throughout
LARGE = [(128, 128, 128, 8, 3), (128, 256, 128, 8, 3), (128, 64, 128, 4, 4), (64, 128, 128, 4, 4)]
LARGE_EXT = [(256, 128, 128, 8, 3), (128, 128, 64, 4, 4), (64, 256, 128, 4, 3), (128, 256, 64, 8, 4)]
SMALL = [(16, 64, 128, 4, 4), (32, 64, 128, 4, 4), (64, 64, 128, 4, 4), (64, 128, 128, 4, 3)]
SMALL_EXT = [(16, 128, 128, 4, 4), (32, 128, 128, 4, 3), (16, 64, 256, 4, 3), (32, 32, 128, 4, 4)]


def _params(m, n, k, cfg):
    bm, bn, bk, w, s = cfg
    bm, bn, bk = min(bm, _pow2(m)), min(bn, _pow2(n)), max(32, min(bk, _pow2(k)))
    return {"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "GROUP_M": 8, "num_warps": w if bm * bn >= 64 * 64 else 4,
            "num_stages": max(2, min(s, math.ceil(k / bk)))}


def configs(m: int, n: int, k: int, fp8: bool = False) -> list[dict]:
    """Tactics for an [m, k] x [k, n] 8-bit GEMM: level-3 ones first, then level 4; no duplicates.
    For e4m3, the first two configs also with fast_acc (the whole K loop in the tensor core's
    reduced-precision accumulator, as cuBLASLt's fast accumulation): faster, and kept only where
    the tactic check finds its output within the quantized tolerance."""
    main, ext = (LARGE, LARGE_EXT + SMALL[2:]) if m > 512 else (SMALL, SMALL_EXT + LARGE[:1])
    seen, out = set(), []
    for cfgs, level, fast in ((main, 3, False), (main[:2] if fp8 else (), 3, True), (ext, 4, False)):
        for cfg in cfgs:
            p = _params(m, n, k, cfg)
            if fast:
                p["fast_acc"] = 1
            key = tuple(sorted(p.items()))
            if key not in seen:
                seen.add(key)
                t = tactic_dict("qgemm", **p)
                if level > 3:
                    t["level"] = level
                out.append(t)
    return out


class QGemmRunner(_Runner):
    """One tf_qgemm launch per input signature (the reference for inputs it does not cover)."""

    def __init__(self, typ, attrs, params, fallback):
        super().__init__(attrs, params, fallback)
        self.kmajor = typ == "fused.QGemm" and bool(attrs.get("transB", 0))
        self.wcache: dict = {}

    def spec(self, inputs):
        x, w, bias, ws = (list(inputs) + [None] * 4)[:4]
        at = self.attrs
        if x is None or w is None or ws is None or x.dim() < 2 or w.dim() != 2:
            return None
        qt = dtype_name(x)
        if qt not in ("float8e4m3fn", "int8") or dtype_name(w) != qt or int(at.get("x_zp", 0) or 0) \
                or int(at.get("w_zp", 0) or 0):
            return None
        k, n = (w.shape[1], w.shape[0]) if self.kmajor else tuple(w.shape)
        if x.shape[-1] != k or ws.numel() not in (1, n) or (bias is not None and bias.numel() != n):
            return None
        shape = tuple(x.shape[:-1]) + (n,)
        extras, epi = list(inputs[4:]), at.get("epilogue")
        if any(e is None for e in extras) or (extras and not epi):
            return None
        kinds = [_tensor_kind(e, shape) for e in extras]
        if None in kinds:
            return None
        eq = at.get("extra_q") or []
        qs = tuple(bool(j < len(eq) and eq[j] and not (e.dtype.is_floating_point and e.dtype.itemsize > 1))
                   for j, e in enumerate(extras))
        dts = [dtype_name(e) for e in extras]
        if any(not q and d not in TL for q, d in zip(qs, dts)):
            return None
        in_dt = ["float32"] + ["float32" if q else d for q, d in zip(qs, dts)]
        if epi and not supported(epi, in_dt):
            return None
        out_q = at.get("out_q")
        out_dt = out_q[2] if out_q else self.params.get("out_dtype", "float32")
        if out_dt not in OUT_TYPES or (not out_q and out_dt not in TL):
            return None
        return {"M": math.prod(x.shape[:-1]), "N": n, "K": k, "shape": shape, "qt": qt, "out_dt": out_dt,
                "kinds": kinds, "qs": qs, "dts": dts}

    def plan(self, inputs):
        from .launch import compile_source
        from .qgemm_source import QGemmSignature, qgemm_source
        p = self.spec(inputs)
        if p is None:
            return None
        m, n, k, at, prm = p["M"], p["N"], p["K"], self.attrs, self.params
        bm, bn, bk = prm["BLOCK_M"], prm["BLOCK_N"], prm["BLOCK_K"]
        bias = inputs[2] if len(inputs) > 2 else None
        big = max((m + 256) * max(n, k), (k + 256) * n) >= INT64_FROM
        out_q = at.get("out_q")
        sig = QGemmSignature(p["qt"], p["out_dt"], inputs[3].numel() > 1,
                             dtype_name(bias) if bias is not None else None,
                             tuple(zip(p["dts"], p["kinds"])), p["qs"], bool(out_q), k % bk == 0, big,
                             p["qt"] == "float8e4m3fn" and bool(prm.get("fast_acc", 0)))
        src, consts = qgemm_source(sig, at.get("epilogue"))
        kernel = compile_source(src, "tf_qgemm")
        meta = {"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "GROUP_M": int(prm.get("GROUP_M", 8))}
        warps, stages = int(prm.get("num_warps", 4)), int(prm.get("num_stages", 3))
        grid = (math.ceil(m / bm) * math.ceil(n / bn),)
        eq = at.get("extra_q") or []
        scal = [float(at.get("x_scale", 1.0)) * float(at.get("alpha", 1.0))]
        scal += [float(v) for j, q in enumerate(p["qs"]) if q for v in (eq[j][0], eq[j][1] or 0)]
        scal += [float(out_q[0]), float(out_q[1] or 0)] if out_q else []
        cvals = [v for _, v in consts]
        shape, out_dt = p["shape"], p["out_dt"]

        def run(ins, outs=None):
            x = ins[0].reshape(m, k)
            if x.stride(1) != 1:
                x = x.contiguous()
            b = weight_kn(ins[1], self.kmajor, self.wcache)
            out = _out(outs, shape, out_dt, x.device)
            if m == 0 or n == 0:
                return [out]
            bias_t = ins[2] if len(ins) > 2 else None
            ops = ([bias_t.reshape(-1)] if bias_t is not None else []) + list(ins[4:])
            args = [x, b, ins[3]] + ops + [out, m, n, k, x.stride(0), x.stride(1), b.stride(0), b.stride(1)]
            kernel[grid](*args, *scal, *cvals, num_warps=warps, num_stages=stages, **meta)
            return [out]
        return run


def qgemm_factory(layer, attrs, opset, device, params):
    """The quantized GEMM runner of a layer (plans per input signature; falls back to the reference)."""
    return QGemmRunner(layer.type, attrs, params, reference(layer, attrs, opset))


def scaled_mm_pw_factory(layer, attrs, opset, device, params):
    """aten's scaled_mm runner whose follow-up (scales, bias, epilogue, output Q) is one generated
    pointwise kernel writing the layer's output buffer, instead of a chain of torch ops."""
    from ..aten.epilogue import compile_expr
    from ..aten.scaled_mm import ScaledMM
    from .runners import PointwiseRunner
    probe = ScaledMM(layer, attrs, params, None, opset, device, finish=lambda args, outs=None: None)
    if probe.expr is None:
        return ScaledMM(layer, attrs, params, reference(layer, attrs, opset), opset, device)
    torch_form = compile_expr(probe.expr, opset, device)
    pw = PointwiseRunner({"expr": probe.expr}, {"BLOCK": int(params.get("BLOCK", 1024))},
                         lambda args: [torch_form(args)])
    return ScaledMM(layer, attrs, params, reference(layer, attrs, opset), opset, device, finish=pw)


@tactic_family("triton", {"qgemm": qgemm_factory, "scaled_mm_pw": scaled_mm_pw_factory}, library="TRITON",
               writes_in_place=True)
def qgemm_candidates(layer, shapes, device) -> list[dict]:
    """Triton 8-bit GEMM configs of a symmetric e4m3 / int8 QGemm / QMatMul (CUDA only)."""
    if not is_cuda(device) or layer.type not in TYPES:
        return []
    p = problem(layer, shapes)
    if p is None or 0 in (p["m"], p["n"], p["k"]) or p["out_dtype"] not in OUT_TYPES:
        return []
    if p["qtype"] == "float8e4m3fn" and torch.cuda.is_available() and torch.cuda.get_device_capability(device) < (8, 9):
        return []
    out = configs(p["m"], p["n"], p["k"], p["qtype"] == "float8e4m3fn")
    for t in out:
        t["params"]["out_dtype"] = p["out_dtype"]
    return out + scaled_mm_pw(layer, shapes, device, p)


def scaled_mm_pw(layer, shapes, device, p) -> list[dict]:
    """The aten scaled_mm tactics that leave a follow-up, as scaled_mm_pw tactics (FP8 on sm_89+)."""
    from ..aten.scaled_mm import supported_here, tactics_for
    fp8, rowwise = supported_here(device)
    if not fp8:
        return []
    return with_followup(layer, tactics_for(p, layer.attrs.get("out_q"), layer.attrs.get("epilogue"), rowwise))


def with_followup(layer, tactics) -> list[dict]:
    """Of aten scaled_mm tactics, those that leave a follow-up, renamed triton:scaled_mm_pw."""
    from ..aten.scaled_mm import ScaledMM
    keep = []
    for t in tactics:
        probe = ScaledMM(layer, layer.attrs, t["params"], None, 17, None, finish=lambda args, outs=None: None)
        if probe.expr is not None:
            keep.append({**t, "source": "triton", "name": "scaled_mm_pw", "params": dict(t["params"])})
    return keep
