"""cuBLAS/cuBLASLt GEMM tactics: bias fused into the GEMM epilogue (addmm) for Gemm / fused.GemmAct,
and cuBLASLt bias+ReLU / bias+GELU(tanh) epilogues (torch._addmm_activation) for fused.GemmAct and
fused.MatMulAct layers whose epilogue is exactly that activation.

Exact (erf) GELU in FP16/BF16 may also run as the tanh-form epilogue (act "gelu_approx"): the two
differ by at most 4.8e-4 absolute (at |x| ~ 2.7), below the rounding error of an FP16 GEMM output
of that size and below half an FP16 ulp of every output >= 1; never offered in FP32."""
from __future__ import annotations

import torch

from ..device import is_cuda
from ..layer_shapes import FLOATS, LOW, is_weight
from ..registry import tactic_family
from . import tactic
from .epilogue import compile_expr
from .gemm_lt import epilogue_form


def act_of(layer, shapes) -> str | None:
    """'none', 'relu', 'gelu' (tanh form) or 'gelu_approx' (erf form, FP16/BF16 layers only: run as
    the tanh form) when the layer's epilogue is exactly that activation, else None."""
    a = shapes.inp(0)
    form = epilogue_form(layer.attrs.get("epilogue"), a is not None and a["dtype"] in LOW)
    return form[0] if form is not None and not form[1] else None


def _gemm_ok(layer, shapes) -> bool:
    """Gemm(a, b, c): 2-D a, transA=0, alpha=beta=1, c a row vector of N."""
    a, b, c = shapes.inp(0), shapes.inp(1), shapes.inp(2)
    at = layer.attrs
    if a is None or b is None or c is None or len(a["shape"]) != 2 or len(b["shape"]) != 2:
        return False
    if a["dtype"] not in FLOATS or at.get("transA", 0) or float(at.get("alpha", 1.0)) != 1.0 \
            or float(at.get("beta", 1.0)) != 1.0:
        return False
    n = b["shape"][0] if at.get("transB", 0) else b["shape"][1]
    return c["dtype"] == a["dtype"] and list(c["shape"]) in ([n], [1, n])


def _matmul_ok(layer, shapes) -> bool:
    """MatMulAct(a, b, bias): a rank >= 2, b a 2-D weight, bias 1-D, alpha 1."""
    a, b, c = shapes.inp(0), shapes.inp(1), shapes.inp(2)
    return (a is not None and is_weight(b) and c is not None and len(a["shape"]) >= 2 and len(b["shape"]) == 2
            and len(c["shape"]) == 1 and a["dtype"] in FLOATS and float(layer.attrs.get("alpha", 1.0)) == 1.0)


def _operands(inputs, attrs):
    a, b = inputs[0], inputs[1]
    if attrs.get("transB", 0):
        b = b.t()
    return a, b, inputs[2].reshape(-1)


def gemm_addmm(layer, attrs, opset, device, params):
    """y = c + a @ b in one GEMM call (cuBLASLt bias epilogue), then the layer's epilogue if any."""
    epi = compile_expr(attrs["epilogue"], opset, device) if attrs.get("epilogue") else None

    def fn(inputs):
        a, b, c = _operands(inputs, attrs)
        y = torch.addmm(c, a, b)
        return (epi([y, *inputs[3:]]) if epi else y,)
    return fn


def gemm_addmm_act(layer, attrs, opset, device, params):
    """y = act(c + a @ b) with a cuBLASLt bias+ReLU/GELU epilogue (params: act relu|gelu|gelu_approx)."""
    gelu = params.get("act") in ("gelu", "gelu_approx")

    def fn(inputs):
        a, b, c = _operands(inputs, attrs)
        return (torch._addmm_activation(c, a, b, use_gelu=gelu),)
    return fn


def matmul_addmm_act(layer, attrs, opset, device, params):
    """act(a @ b + bias) for a of any rank >= 2: rows folded into one cuBLASLt GEMM."""
    gelu = params.get("act") in ("gelu", "gelu_approx")

    def fn(inputs):
        a, b, c = inputs[0], inputs[1], inputs[2]
        y = torch._addmm_activation(c, a.reshape(-1, a.shape[-1]), b, use_gelu=gelu)
        return (y.reshape(*a.shape[:-1], b.shape[-1]),)
    return fn


@tactic_family("aten", {"gemm_addmm": gemm_addmm, "gemm_addmm_act": gemm_addmm_act,
                        "matmul_addmm_act": matmul_addmm_act}, library="CUBLAS_LT")
def gemm_candidates(layer, shapes, device):
    """Epilogue-fused cuBLASLt tactics (CUDA only)."""
    if not is_cuda(device):
        return []
    act = act_of(layer, shapes)
    out = []
    if layer.type in ("Gemm", "fused.GemmAct") and _gemm_ok(layer, shapes):
        if act in ("relu", "gelu", "gelu_approx"):
            out.append(tactic("gemm_addmm_act", act=act))
        out.append(tactic("gemm_addmm"))
    elif layer.type == "fused.MatMulAct" and _matmul_ok(layer, shapes) and act in ("relu", "gelu", "gelu_approx"):
        out.append(tactic("matmul_addmm_act", act=act))
    return out
