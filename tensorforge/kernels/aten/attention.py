"""SDPA tactics for fused.Attention layers: one scaled_dot_product_attention backend each (flash,
cuDNN, memory-efficient), forced with torch.nn.attention.sdpa_kernel. The reference lets torch's
dispatcher choose."""
from __future__ import annotations

from ..device import capability, is_cuda
from ..layer_shapes import FLOATS, LOW
from ..registry import tactic_family
from . import tactic

ATTENTION_TYPES = ("fused.Attention",)


def head_dim(layer, shapes):
    from ...ops.fused.attention import view_shape
    q = shapes.inp(0)
    return view_shape(q["shape"], layer.attrs.get("q_view"))[-1] if q is not None else None


def sdpa_backend(name):
    from torch.nn.attention import SDPBackend
    return {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
            "efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH}[name]


def sdpa(layer, attrs, opset, device, params):
    """The fused.Attention reference with one SDPA backend forced."""
    from torch.nn.attention import sdpa_kernel

    from ...ops.fused.attention import attention_ref
    backend = sdpa_backend(params["backend"])

    def fn(inputs):
        with sdpa_kernel(backend):
            return (attention_ref(*inputs, **attrs),)
    return fn


def sdpa_library(params) -> str:
    """cuDNN's attention counts as CUDNN (--tacticSources), the other backends as ATEN."""
    return "CUDNN" if params.get("backend") == "cudnn" else "ATEN"


@tactic_family("aten", {"sdpa": sdpa}, library=sdpa_library)
def attention_candidates(layer, shapes, device):
    """Backends valid for the layer's dtype, head size, mask and GPU (CUDA only)."""
    if layer.type not in ATTENTION_TYPES or not is_cuda(device):
        return []
    q = shapes.inp(0)
    if q is None or q["dtype"] not in FLOATS:
        return []
    d = head_dim(layer, shapes)
    masked = shapes.inp(3) is not None
    cap = capability(device)
    out = []
    if q["dtype"] in LOW and d % 8 == 0 and d <= 256 and not masked and cap >= (8, 0):
        out.append(tactic("sdpa", backend="flash"))
    if q["dtype"] in LOW and d % 8 == 0 and d <= 128 and cap >= (9, 0):
        out.append(tactic("sdpa", backend="cudnn"))
    out.append(tactic("sdpa", backend="efficient"))
    out.append(tactic("sdpa", backend="math", level=4))
    return out
