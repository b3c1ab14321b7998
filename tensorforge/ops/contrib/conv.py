"""com.microsoft fused layers: FusedConv, FusedGemm (activation attribute), FusedMatMul, NhwcConv (channels-last)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ...errors import UnsupportedOpError
from ..conv import conv_infer, conv_ref
from ..matmul import gemm_infer, gemm_ref
from ..registry import infer, reference
from . import MS

# ORT's MLAS activation kinds: name -> fn(x, params) with params (alpha, beta, gamma) in order
_ACT = {
    "Relu": lambda x, p: torch.relu(x),
    "Tanh": lambda x, p: torch.tanh(x),
    "Sigmoid": lambda x, p: torch.sigmoid(x),
    "LeakyRelu": lambda x, p: F.leaky_relu(x, p[0] if p else 0.01),
    "Clip": lambda x, p: x.clamp(p[0], p[1]),
    "HardSigmoid": lambda x, p: (x * (p[0] if p else 0.2) + (p[1] if len(p) > 1 else 0.5)).clamp(0, 1),
    "Elu": lambda x, p: F.elu(x, p[0] if p else 1.0),
    "Softsign": lambda x, p: F.softsign(x),
    "Softplus": lambda x, p: F.softplus(x),
    "ScaledTanh": lambda x, p: p[0] * torch.tanh(p[1] * x),
    "ThresholdedRelu": lambda x, p: torch.where(x > (p[0] if p else 1.0), x, torch.zeros_like(x)),
}


def activate(x, name, params):
    """Apply an ORT fused activation by name ('' or None: identity)."""
    if not name:
        return x
    if name not in _ACT:
        raise UnsupportedOpError(f"fused activation '{name}' is not supported")
    return _ACT[name](x, list(params or []))


@reference("FusedConv", domain=MS)
def fused_conv_ref(x, w, b=None, z=None, activation="", activation_params=None, **attrs):
    """act(Conv(x, w, b) + z)."""
    y = conv_ref(x, w, b, **attrs)
    if z is not None:
        y = y + z
    return activate(y, activation, activation_params)


@reference("FusedGemm", domain=MS)
def fused_gemm_ref(a, b, c=None, activation="", activation_alpha=None, activation_beta=None,
                   activation_gamma=None, **attrs):
    """act(Gemm(a, b, c))."""
    p = [v for v in (activation_alpha, activation_beta, activation_gamma) if v is not None]
    return activate(gemm_ref(a, b, c, **attrs), activation, p)


infer("FusedConv", domain=MS)(conv_infer)
infer("FusedGemm", domain=MS)(gemm_infer)


@reference("NhwcConv", domain=MS)
def nhwc_conv_ref(x, w, b=None, **attrs):
    """Conv on channels-last data: x (N, *spatial, C), w (M, *kernel, C/group), y (N, *spatial, M)."""
    last = x.dim() - 1
    to_first = lambda t: t.permute(0, last, *range(1, last))  # noqa: E731
    y = conv_ref(to_first(x), to_first(w), b, **attrs)
    return y.permute(0, *range(2, y.dim()), 1)


@infer("NhwcConv", domain=MS)
def nhwc_conv_infer(node):
    class _View:  # conv_infer on channels-first views of x and w
        class _V:
            def __init__(self, v):
                s = tuple(v.shape)
                self.dtype, self.shape = v.dtype, (s[0], s[-1]) + s[1:-1]
        inputs = [_V(node.inputs[0]), _V(node.inputs[1])]
        attrs, name = node.attrs, node.name
    dt, s = conv_infer(_View)[0]
    return [(dt, (s[0],) + tuple(s[2:]) + (s[1],))]




def _t(x, on):
    return x.transpose(-1, -2) if on else x


@reference("FusedMatMul", domain=MS)
def fused_matmul_ref(a, b, alpha=1.0, transA=0, transB=0, transBatchA=0, transBatchB=0):
    """alpha · op(a) @ op(b), op transposing the last two axes."""
    if transBatchA or transBatchB:
        raise UnsupportedOpError("FusedMatMul: transBatchA / transBatchB are not supported")
    y = torch.matmul(_t(a, transA), _t(b, transB))
    return y * alpha if alpha != 1.0 else y


@infer("FusedMatMul", domain=MS)
def fused_matmul_infer(node):
    from ...ir.symbolic import broadcast
    a, b = list(node.inputs[0].shape), list(node.inputs[1].shape)
    if node.attrs.get("transA", 0) and len(a) > 1:
        a[-1], a[-2] = a[-2], a[-1]
    if node.attrs.get("transB", 0) and len(b) > 1:
        b[-1], b[-2] = b[-2], b[-1]
    a2 = [1] + a if len(a) == 1 else a
    b2 = b + [1] if len(b) == 1 else b
    out = list(broadcast(tuple(a2[:-2]), tuple(b2[:-2]))) + [a2[-2], b2[-1]]
    out = out[:-2] + out[-1:] if len(a) == 1 else out
    out = out[:-1] if len(b) == 1 else out
    return [(node.inputs[0].dtype, tuple(out))]
