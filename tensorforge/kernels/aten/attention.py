"""SDPA tactics for fused.Attention layers: one scaled_dot_product_attention backend each (flash,
cuDNN, memory-efficient), forced with torch.nn.attention.sdpa_kernel. The reference lets torch's
dispatcher choose."""
from __future__ import annotations

from . import offers, tactic, variant
from .common import FLOATS, LOW, capability, inp, is_cuda

ATTENTION_TYPES = ("fused.Attention",)


def _head_dim(layer):
    from ...ops.fused.attention import view_shape
    q = inp(layer, 0)
    return view_shape(q["shape"], layer.attrs.get("q_view"))[-1] if q is not None else None


@offers
def attention_candidates(layer, device):
    """Backends valid for the layer's dtype, head size, mask and GPU (CUDA only)."""
    if layer.type not in ATTENTION_TYPES or not is_cuda(device):
        return []
    q = inp(layer, 0)
    if q is None or q["dtype"] not in FLOATS:
        return []
    d = _head_dim(layer)
    masked = inp(layer, 3) is not None
    cap = capability(device)
    out = []
    if q["dtype"] in LOW and d % 8 == 0 and d <= 256 and not masked and cap >= (8, 0):
        out.append(tactic("sdpa", backend="flash"))
    if q["dtype"] in LOW and d % 8 == 0 and d <= 128 and cap >= (9, 0):
        out.append(tactic("sdpa", backend="cudnn"))
    out.append(tactic("sdpa", backend="efficient"))
    out.append(tactic("sdpa", backend="math", level=4))
    return out


def _backend(name):
    from torch.nn.attention import SDPBackend
    return {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
            "efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH}[name]


@variant("sdpa", "ATEN")
def sdpa(layer, attrs, opset, device, params):
    """The fused.Attention reference with one SDPA backend forced."""
    from torch.nn.attention import sdpa_kernel

    from ...ops.fused.attention import attention_ref
    backend = _backend(params["backend"])

    def fn(inputs):
        with sdpa_kernel(backend):
            return (attention_ref(*inputs, **attrs),)
    return fn
