"""Tactic "cublaslt": a weight GEMM as one cuBLASLt call with bias, residual (C, beta = 1) and
ReLU / GELU in its epilogue (cublaslt.LtMatmul), for MatMul / Gemm / fused.MatMulAct /
fused.GemmAct in FP16 / BF16. Params: act (none | relu | gelu | gelu_approx: an erf GELU run as
the tanh form, see gemm.py), res (1: the epilogue adds input 1 of the expression, a full-shape
residual), algo (index into cuBLASLt's heuristic list for the problem)."""
from __future__ import annotations

import math

import torch

from ..device import is_cuda
from ..layer_shapes import LOW, weight_gemm
from ..registry import tactic_family
from . import tactic
from .cublaslt import LtMatmul, aligns

TYPES = ("MatMul", "Gemm", "fused.MatMulAct", "fused.GemmAct")
LEVEL3_ALGOS, LEVEL4_ALGOS = 3, 8


def _act(node) -> str | None:
    if node["op"] == "Relu":
        return "relu"
    if node["op"] == "Gelu":
        return "gelu" if node.get("attrs", {}).get("approximate", "none") == "tanh" else "gelu_approx"
    return None


def epilogue_form(expr, low: bool):
    """(act, residual) when the epilogue expression is act(y), y + x1, x1 + y or act(y + x1) over
    the GEMM result y (input 0) and one extra input x1; None otherwise. gelu_approx needs low."""
    if not expr:
        return "none", False
    nodes, top = expr["nodes"], expr["nodes"][expr["out"]]

    def add_res(node):  # y + x1 in either order
        a = node.get("args", [])
        return node["op"] == "Add" and len(a) == 2 and all(nodes[i]["op"] == "input" for i in a) \
            and sorted(nodes[i]["i"] for i in a) == [0, 1]
    form = None
    if add_res(top):
        form = ("none", True)
    elif _act(top) and len(top.get("args", [])) == 1:
        arg = nodes[top["args"][0]]
        if arg["op"] == "input" and arg.get("i") == 0:
            form = (_act(top), False)
        elif add_res(arg):
            form = (_act(top), True)
    if form is None or (form[0] == "gelu_approx" and not low):
        return None
    n_inputs = sum(1 for nd in nodes if nd["op"] == "input")
    return form if n_inputs == (2 if form[1] else 1) else None


def problem(layer, shapes):
    """(m, n, k, act, residual, bias) when the layer fits one cuBLASLt call, else None."""
    at = layer.attrs
    mnk = weight_gemm(layer, shapes, LOW) if layer.type in TYPES else None
    if mnk is None or float(at.get("alpha", 1.0)) != 1.0:
        return None
    if layer.type in ("Gemm", "fused.GemmAct") and float(at.get("beta", 1.0)) != 1.0:
        return None
    m, n, k = mnk
    form = epilogue_form(at.get("epilogue"), True)
    if form is None:
        return None
    act, res = form
    a, c = shapes.inp(0), shapes.inp(2)
    if c is not None and (c["dtype"] != a["dtype"] or list(c["shape"]) not in ([n], [1, n])):
        return None
    extra = shapes.inp(3)
    out_shape = list(a["shape"][:-1]) + [n]
    if res and (extra is None or extra["dtype"] != a["dtype"] or list(extra["shape"]) != out_shape):
        return None
    if not res and len(layer.inputs) > 3:
        return None
    return m, n, k, act, res, c is not None


class LtRunner:
    """Per input signature (shapes, strides, pointer alignments) one LtMatmul + workspace; inputs it
    cannot take (strides, dtypes) or a missing algorithm run the reference instead."""
    takes_out = True

    def __init__(self, layer_type, attrs, params, ref):
        self.gemm = layer_type in ("Gemm", "fused.GemmAct")
        self.attrs, self.ref = attrs, ref
        self.act = {"gelu_approx": "gelu"}.get(params.get("act", "none"), params.get("act", "none"))
        self.res, self.algo = bool(params.get("res", 0)), int(params.get("algo", 0))
        self.plans = {}

    def _plan(self, a, w, bias, c, out):
        m, k = math.prod(a.shape[:-1]), a.shape[-1]
        try:
            a2 = a.view(m, k)
        except RuntimeError:
            return None
        n = w.shape[0] if self.gemm and self.attrs.get("transB", 0) else w.shape[1]
        wv = w.t() if self.gemm and self.attrs.get("transB", 0) else w
        if (bias is not None and not bias.is_contiguous()) or (c is not None and not c.is_contiguous()):
            return None
        try:
            lt = LtMatmul(m, n, k, a.dtype, a2.stride(), wv.stride(), self.act, bias is not None, self.res,
                          aligns(a2, wv, c if c is not None else out, out), a.device)
        except (RuntimeError, ValueError):
            return None
        if self.algo >= len(lt.algos):
            return None
        ws = torch.empty(max(1, lt.algos[self.algo].workspaceSize), dtype=torch.uint8, device=a.device)
        return lt, a2, wv, ws

    def bind(self, inputs, outs):
        """replay(stream handle) of this call with these fixed tensors (None: not bindable, call it)."""
        a, w = inputs[0], inputs[1]
        bias = inputs[2] if len(inputs) > 2 else None
        c = inputs[3] if self.res and len(inputs) > 3 else None
        n = w.shape[0] if self.gemm and self.attrs.get("transB", 0) else w.shape[1]
        shape = tuple(a.shape[:-1]) + (n,)
        out = outs[0] if outs else None
        if out is None or tuple(out.shape) != shape or out.dtype != a.dtype or not out.is_contiguous() or \
                out.numel() == 0 or (self.res and (c is None or tuple(c.shape) != shape or c.dtype != a.dtype)):
            return None
        key = tuple(None if t is None else (t.dtype, tuple(t.shape), t.stride()) for t in (a, w, bias, c)) + \
            aligns(*[t for t in (a, w, c, out) if t is not None])
        if key not in self.plans:
            self.plans[key] = self._plan(a, w, bias, c, out)
        plan = self.plans[key]
        if plan is None:
            return None
        lt, _, wv, ws = plan
        return lt.bind(a.view(lt.m, lt.k), wv, bias.reshape(-1) if bias is not None else None, c, out, self.algo, ws)

    def __call__(self, inputs, outs=None):
        a, w = inputs[0], inputs[1]
        bias = inputs[2] if len(inputs) > 2 else None
        c = inputs[3] if self.res and len(inputs) > 3 else None
        n = w.shape[0] if self.gemm and self.attrs.get("transB", 0) else w.shape[1]
        shape = tuple(a.shape[:-1]) + (n,)
        out = outs[0] if outs and outs[0] is not None and tuple(outs[0].shape) == shape \
            and outs[0].dtype == a.dtype and outs[0].is_contiguous() else None
        if out is None:
            out = torch.empty(shape, dtype=a.dtype, device=a.device)
        if self.res and (c is None or tuple(c.shape) != shape or c.dtype != a.dtype):
            return list(self.ref(inputs))
        key = tuple(None if t is None else (t.dtype, tuple(t.shape), t.stride()) for t in (a, w, bias, c)) + \
            aligns(*[t for t in (a, w, c, out) if t is not None])
        if key not in self.plans:
            self.plans[key] = self._plan(a, w, bias, c, out)
        plan = self.plans[key]
        if plan is None or out.numel() == 0:
            return list(self.ref(inputs))
        lt, _, wv, ws = plan
        lt.run(a.view(lt.m, lt.k), wv, bias.reshape(-1) if bias is not None else None,
               c, out, self.algo, ws)
        return [out]


def cublaslt_factory(layer, attrs, opset, device, params):
    """The LtRunner of a layer (the reference for inputs it cannot take)."""
    from ...ops import registry
    op = registry.get(layer.type, layer.domain, layer.name)

    def ref(inputs):
        return op.run(inputs, attrs, opset)
    return LtRunner(layer.type, attrs, params, ref)


@tactic_family("aten", {"cublaslt": cublaslt_factory}, library="CUBLAS_LT", writes_in_place=True)
def lt_candidates(layer, shapes, device):
    """The first few cuBLASLt heuristic algorithms of the problem (CUDA only)."""
    if not is_cuda(device) or not torch.cuda.is_available():
        return []
    p = problem(layer, shapes)
    if p is None or 0 in p[:3]:
        return []
    m, n, k, act, res, bias = p
    dt = getattr(torch, shapes.inp(0)["dtype"])
    w_strides = (1, k) if layer.type in ("Gemm", "fused.GemmAct") and layer.attrs.get("transB", 0) else (n, 1)
    try:
        count = len(LtMatmul(m, n, k, dt, (k, 1), w_strides, "gelu" if act == "gelu_approx" else act, bias, res,
                             device=device).algos)
    except (RuntimeError, ValueError, OSError):
        return []
    return [tactic("cublaslt", level=1 if i < LEVEL3_ALGOS else 4, act=act, res=int(res), algo=i)
            for i in range(min(count, LEVEL4_ALGOS))]
