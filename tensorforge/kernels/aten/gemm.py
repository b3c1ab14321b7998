"""cuBLAS/cuBLASLt GEMM tactics: Gemm with the bias fused into the GEMM epilogue (addmm), and
cuBLASLt bias+ReLU/GELU epilogues (torch._addmm_activation) for GEMM layers with an activation."""
from __future__ import annotations

import torch

from . import offers, tactic, variant
from .common import FLOATS, inp, is_cuda

_ACTS = ("relu", "gelu")


def _gemm_ok(layer) -> bool:
    """Gemm(a, b, c): 2-D a, transA=0, alpha=beta=1, c omitted or a row vector of N."""
    a, b, c = inp(layer, 0), inp(layer, 1), inp(layer, 2)
    at = layer.attrs
    if a is None or b is None or len(a["shape"]) != 2 or len(b["shape"]) != 2 or a["dtype"] not in FLOATS:
        return False
    if at.get("transA", 0) or float(at.get("alpha", 1.0)) != 1.0 or float(at.get("beta", 1.0)) != 1.0:
        return False
    n = b["shape"][0] if at.get("transB", 0) else b["shape"][1]
    return c is None or (c["dtype"] == a["dtype"] and list(c["shape"]) in ([n], [1, n]))


@offers
def gemm_candidates(layer, device):
    """addmm (bias in the cuBLASLt epilogue) for Gemm layers with a bias (CUDA only)."""
    if layer.type != "Gemm" or not is_cuda(device) or not _gemm_ok(layer) or inp(layer, 2) is None:
        return []
    return [tactic("gemm_addmm")]


def _operands(inputs, attrs):
    a, b = inputs[0], inputs[1]
    c = inputs[2] if len(inputs) > 2 else None
    if attrs.get("transB", 0):
        b = b.t()
    return a, b, (c.reshape(-1) if c is not None else None)


@variant("gemm_addmm", "CUBLAS_LT")
def gemm_addmm(layer, attrs, opset, device, params):
    """y = c + a @ b in one GEMM call (cuBLASLt bias epilogue when c is a row vector)."""
    def fn(inputs):
        a, b, c = _operands(inputs, attrs)
        return (torch.addmm(c, a, b) if c is not None else torch.mm(a, b),)
    return fn


@variant("gemm_addmm_act", "CUBLAS_LT")
def gemm_addmm_act(layer, attrs, opset, device, params):
    """y = act(c + a @ b) with a cuBLASLt bias+ReLU/GELU epilogue (params: act relu|gelu)."""
    gelu = params.get("act") == "gelu"

    def fn(inputs):
        a, b, c = _operands(inputs, attrs)
        return (torch._addmm_activation(c, a, b, use_gelu=gelu),)
    return fn


def act_candidates(layer, device, act: str):
    """cuBLASLt epilogue tactics for a layer computing act(a @ b + c) (CUDA, fp16/bf16/fp32)."""
    if act not in _ACTS or not is_cuda(device) or not _gemm_ok(layer) or inp(layer, 2) is None:
        return []
    if not hasattr(torch, "_addmm_activation"):
        return []
    return [tactic("gemm_addmm_act", act=act)]
