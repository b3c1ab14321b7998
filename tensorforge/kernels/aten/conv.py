"""cuDNN convolution tactics: NHWC (channels-last) 2-D convolution, fused conv+bias(+add)+ReLU.

Weights wanted channels-last are laid out once at build time (tactic param weight_layout, applied
by build/tactics); a kernel given NCHW weights (e.g. an engine file reloaded, whose weights are
stored contiguous) converts them once on its first call and keeps the copy."""
from __future__ import annotations

import torch

from ...ops.nn import conv_ref, resolve_pads
from . import offers, tactic, variant
from .common import FLOATS, cached, inp, is_cuda, is_weight

CL = torch.channels_last
CONV_TYPES = ("Conv",)


def _to_cl(t):
    return t.contiguous(memory_format=CL)


def _conv2d_ok(layer) -> bool:
    """A 2-D convolution with a constant weight on float data."""
    x, w = inp(layer, 0), inp(layer, 1)
    return (x is not None and is_weight(w) and len(w["shape"]) == 4 and len(x["shape"]) == 4
            and x["dtype"] in FLOATS and w["dtype"] == x["dtype"])


def _sym_pads(layer):
    """[ph, pw] when the conv's resolved padding is symmetric, else None."""
    x, w = inp(layer, 0), inp(layer, 1)
    a = layer.attrs
    st = a.get("strides") or [1, 1]
    dil = a.get("dilations") or [1, 1]
    pads = resolve_pads(a.get("auto_pad", "NOTSET"), list(x["shape"][2:]), list(w["shape"][2:]), st, dil,
                        a.get("pads"))
    return pads[:2] if pads[:2] == pads[2:] else None


@offers
def conv_candidates(layer, device):
    """NHWC conv for any 2-D conv (CUDA and CPU); cuDNN fused bias+ReLU for Conv->Relu layers."""
    if layer.type not in CONV_TYPES or not _conv2d_ok(layer):
        return []
    out = [tactic("conv2d_nhwc", weight_layout="channels_last")]
    return out


@variant("conv2d_nhwc", "CUDNN")
def conv2d_nhwc(layer, attrs, opset, device, params):
    """Convolution on channels-last activations and weights; the result is channels-last."""
    wcl = cached(_to_cl)

    def fn(inputs):
        x, w = inputs[0], inputs[1]
        b = inputs[2] if len(inputs) > 2 else None
        if not w.is_contiguous(memory_format=CL):
            w = wcl(w)
        return (conv_ref(_to_cl(x), w, b, **attrs),)
    return fn


@variant("conv2d_relu", "CUDNN")
def conv2d_relu(layer, attrs, opset, device, params):
    """relu(conv(x, w) + b) in one cuDNN call (torch.cudnn_convolution_relu; symmetric pads)."""
    layout = params.get("weight_layout")
    wcl = cached(_to_cl)
    st = attrs.get("strides") or [1, 1]
    dil = attrs.get("dilations") or [1, 1]
    group = attrs.get("group", 1)
    pads = params["pads"]

    def fn(inputs):
        x, w = inputs[0], inputs[1]
        b = inputs[2] if len(inputs) > 2 else None
        if layout == "channels_last":
            x = _to_cl(x)
            w = w if w.is_contiguous(memory_format=CL) else wcl(w)
        return (torch.cudnn_convolution_relu(x, w, b, st, pads, dil, group),)
    return fn


def fused_relu_candidates(layer, device):
    """cuDNN conv+bias+ReLU tactics for a layer computing relu(conv(x) + b) (CUDA only)."""
    if not (is_cuda(device) and _conv2d_ok(layer) and hasattr(torch, "cudnn_convolution_relu")):
        return []
    pads = _sym_pads(layer)
    if pads is None:
        return []
    return [tactic("conv2d_relu", weight_layout="channels_last", pads=pads),
            tactic("conv2d_relu", pads=pads)]


_ = is_cuda
