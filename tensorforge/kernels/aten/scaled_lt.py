"""Tactic "cublaslt_fp8": an e4m3 fused.QGemm / fused.QMatMul as one cuBLASLt FP8 GEMM through our
ctypes binding (cublaslt.LtMatmul), with what torch._scaled_mm cannot fuse in cuBLASLt's epilogue:
the bias (the bias input, or an extra [N] input the passes left in the epilogue as y + b), ReLU / GELU
(an erf GELU runs as cuBLASLt's tanh form: only where the output is quantized, and the tactic check
compares in e4m3 steps) and the output Q into e4m3 (D scale = 1 / the Q's scale, saturating).

Session 10 on the H200 (bench/quant_gemm.py, BERT bs 32): cuBLASLt's FP8 GEMM alone takes 18.7 /
16.1 / 26.3 / 24.0 us for the QKV / out-proj / FFN-up / FFN-down shapes against 26 / 23 / 40-53 / 37 us
in FP16, but every FP8 tactic we had then (torch._scaled_mm + a pointwise kernel, the Triton qgemm)
took 43-75 us: the follow-up kernel cost more than the GEMM saved.

Scales: the per-tensor weight scale as cuBLASLt's A scale (a device scalar: refit rewrites it in place),
the activation scale and Gemm alpha in alpha. Per-channel weight scales are not taken: cuBLASLt refused
its per-vector scale modes for every FP8 problem on the H200 (bench/lt_fp8_probe.py), and tensorforge
quantize writes FP8 weights per tensor. Params: fast_accum, algo (index into the heuristic's list).
Layers with a residual (an extra the size of the output) are not taken: cuBLASLt's C must be FP16 and
their residual is quantized."""
from __future__ import annotations

import math

import torch

from ..device import is_cuda
from ..quant_gemm import FP8_MAX, cached, problem, weight_kn
from ..registry import tactic_family
from . import tactic
from .cublaslt import LtMatmul, aligns

ACTS = {"Relu": "relu", "Gelu": "gelu"}
FP8 = "float8e4m3fn"
OUT = {"float16": torch.float16, "bfloat16": torch.bfloat16, FP8: torch.float8_e4m3fn}
LEVEL3_ALGOS = 2


def _strip_q(nodes, top):
    """(node, Q scale) when `top` is the passes' folded e4m3 output Q: Cast(to e4m3) of Clip(+-448) of
    Div(x, const s), x possibly a Cast to float32; else (top, None)."""
    n = nodes[top]
    if n["op"] != "Cast" or n.get("attrs", {}).get("to") != 17:
        return top, None
    clip = nodes[n["args"][0]]
    if clip["op"] != "Clip" or clip.get("attrs", {}).get("min") != -FP8_MAX or clip.get("attrs", {}).get("max") != FP8_MAX:
        return top, None
    div = nodes[clip["args"][0]]
    if div["op"] != "Div" or nodes[div["args"][1]]["op"] != "const":
        return top, None
    s = float(nodes[div["args"][1]]["v"])
    x = div["args"][0]
    if nodes[x]["op"] == "Cast" and nodes[x].get("attrs", {}).get("to") == 1:
        x = nodes[x]["args"][0]
    return (x, s) if s > 0 else (top, None)


def epilogue_form(attrs, n_extras: int):
    """{act, bias_extra, q_scale} when the layer's epilogue and output Q fit cuBLASLt's FP8 epilogue:
    [act](y [+ x1]) with x1 an extra bias, then an optional e4m3 output Q; None otherwise."""
    expr, out_q = attrs.get("epilogue"), attrs.get("out_q")
    act, bias_extra, q = "none", False, None
    if expr:
        nodes = expr["nodes"]
        top, q = _strip_q(nodes, expr["out"])
        node = nodes[top]
        if node["op"] in ACTS and len(node.get("args", [])) == 1:
            if node["op"] == "Relu" or node.get("attrs", {}).get("approximate", "none") in ("none", "tanh"):
                act, node = ACTS[node["op"]], nodes[node["args"][0]]
            else:
                return None
        if node["op"] == "Add" and len(node.get("args", [])) == 2:
            ins = sorted(nodes[a].get("i", -1) if nodes[a]["op"] == "input" else -1 for a in node["args"])
            if ins != [0, 1]:
                return None
            bias_extra = True
        elif not (node["op"] == "input" and node.get("i") == 0):
            return None
        if sum(1 for nd in nodes if nd["op"] == "input") != (2 if bias_extra else 1):
            return None
    if out_q:
        if q is not None or out_q[2] != FP8 or float(out_q[1] or 0):
            return None
        q = float(out_q[0])
    if act == "gelu" and q is None:  # the tanh form stands for an erf GELU only before a Q
        if next(nd for nd in expr["nodes"] if nd["op"] == "Gelu").get("attrs", {}).get("approximate") != "tanh":
            return None
    if n_extras != (1 if bias_extra else 0):
        return None
    return {"act": act, "bias_extra": bias_extra, "q_scale": q}


class ScaledLtRunner:
    """Per input signature one LtMatmul + workspace; inputs it cannot take run the reference."""
    takes_out = True

    def __init__(self, layer_type, attrs, params, form, ref):
        self.kmajor = layer_type == "fused.QGemm" and bool(attrs.get("transB", 0))
        self.attrs, self.form, self.ref = attrs, form, ref
        self.fast = bool(params.get("fast_accum", 0))
        self.algo = int(params.get("algo", 0))
        self.out_dtype = OUT.get(FP8 if form["q_scale"] else params.get("out_dtype", "float16"))
        self.alpha = float(attrs.get("x_scale", 1.0)) * float(attrs.get("alpha", 1.0))
        self.plans: dict = {}
        self.cache: dict = {}

    def _bias(self, inputs):
        b = inputs[4] if self.form["bias_extra"] else (inputs[2] if len(inputs) > 2 else None)
        if b is None:
            return None
        dt = torch.float16 if self.out_dtype == torch.float8_e4m3fn else self.out_dtype
        return cached(self.cache, b, "bias", lambda t: t.reshape(-1).to(dt).contiguous())

    def _plan(self, a, b, bias, out, dev):
        m, k = a.shape
        try:
            lt = LtMatmul(m, b.shape[1], k, torch.float8_e4m3fn, a.stride(), b.stride(), self.form["act"],
                          bias is not None, False, aligns(b, a, out, out), dev, out_dtype=self.out_dtype,
                          fast_accum=self.fast)
        except (RuntimeError, ValueError):
            return None
        if self.algo >= len(lt.algos):
            return None
        ws = torch.empty(max(1, lt.algos[self.algo].workspaceSize), dtype=torch.uint8, device=dev)
        dscale = torch.full((), 1.0 / self.form["q_scale"], dtype=torch.float32, device=dev) \
            if self.form["q_scale"] else None
        return lt, ws, dscale

    def __call__(self, inputs, outs=None):
        x, w, ws = inputs[0], inputs[1], inputs[3] if len(inputs) > 3 else None
        if x is None or w is None or ws is None or x.dtype != torch.float8_e4m3fn or w.dtype != x.dtype \
                or x.numel() == 0 or not x.is_cuda:
            return list(self.ref(inputs))
        k = x.shape[-1]
        a = x.reshape(-1, k)
        if a.stride(1) != 1 or a.stride(0) != k:
            a = a.contiguous()
        b = weight_kn(w, self.kmajor, self.cache)
        n = b.shape[1]
        if ws.numel() != 1:
            return list(self.ref(inputs))
        bias = self._bias(inputs)
        if bias is not None and bias.numel() != n:
            return list(self.ref(inputs))
        shape = tuple(x.shape[:-1]) + (n,)
        o = outs[0] if outs else None
        out = o if o is not None and tuple(o.shape) == shape and o.dtype == self.out_dtype and o.is_contiguous() \
            else torch.empty(shape, dtype=self.out_dtype, device=x.device)
        key = (a.shape, a.stride(), b.stride(), bias is not None) + aligns(b, a, out)
        if key not in self.plans:
            self.plans[key] = self._plan(a, b, bias, out, x.device)
        plan = self.plans[key]
        if plan is None:
            return list(self.ref(inputs))
        lt, work, dscale = plan
        wscale = cached(self.cache, ws, "ws", lambda t: t.reshape(()).float().contiguous())
        lt.run(a, b, bias, None, out.view(-1, n), self.algo, work, alpha=self.alpha, w_scale=wscale, d_scale=dscale)
        return [out]


def scaled_lt_factory(layer, attrs, opset, device, params):
    from ...ops import registry
    op = registry.get(layer.type, layer.domain, layer.name)
    form = epilogue_form(attrs, len(layer.inputs) - 4)

    def ref(inputs):
        return op.run(inputs, attrs, opset)
    if form is None:
        raise ValueError("cublaslt_fp8: the layer's epilogue does not fit cuBLASLt's")
    return ScaledLtRunner(layer.type, attrs, params, form, ref)


def tactics_for(p, form, n_algos: int) -> list[dict]:
    """The tactics of a problem (problem() of kernels.quant_gemm) whose epilogue fits (form)."""
    if p is None or form is None or p["qtype"] != FP8 or p["k"] % 16 or p["n"] % 16 or 0 in (p["m"], p["n"], p["k"]) \
            or p["per_channel"]:
        return []
    out = FP8 if form["q_scale"] else p["out_dtype"]
    if out not in OUT or (form["q_scale"] and p["out_dtype"] != FP8):
        return []
    if form["bias_extra"] and (p["bias"] or len(p["extras"]) != 1
                               or math.prod(int(d) for d in p["extras"][0]["shape"]) != p["n"]):
        return []
    res = []
    for i in range(min(n_algos, 4)):
        for fast in (0, 1):
            t = tactic("cublaslt_fp8", fast_accum=fast, algo=i, out_dtype=p["out_dtype"])
            if i >= LEVEL3_ALGOS:
                t["level"] = 4
            res.append(t)
    return res


@tactic_family("aten", {"cublaslt_fp8": scaled_lt_factory}, library="CUBLAS_LT", writes_in_place=True)
def scaled_lt_candidates(layer, shapes, device):
    """cuBLASLt FP8 GEMMs with a fused bias / activation / output Q (CUDA, sm_89+, per-tensor weight scale)."""
    if layer.type not in ("fused.QGemm", "fused.QMatMul") or not is_cuda(device) or not torch.cuda.is_available():
        return []
    if torch.cuda.get_device_capability(device) < (8, 9):
        return []
    p = problem(layer, shapes)
    form = epilogue_form(layer.attrs, len(layer.inputs) - 4)
    if p is None or form is None or p["per_channel"]:
        return []
    try:  # how many algorithms cuBLASLt offers for it (none: this cuBLASLt cannot run the combination)
        lt = LtMatmul(p["m"], p["n"], p["k"], torch.float8_e4m3fn, (p["k"], 1), (1, p["k"]), form["act"],
                      form["bias_extra"] or p["bias"], False, device=device,
                      out_dtype=OUT.get(FP8 if form["q_scale"] else p["out_dtype"], torch.float16))
        n_algos = len(lt.algos)
    except (RuntimeError, ValueError, OSError):
        return []
    return tactics_for(p, form, n_algos)
