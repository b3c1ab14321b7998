"""cuDNN convolution tactics for Conv and fused.ConvAct layers: NHWC (channels-last) convolution,
and cuDNN's fused conv+bias+ReLU / conv+bias+add+ReLU (torch.cudnn_convolution_relu /
torch.cudnn_convolution_add_relu) for the epilogues relu(y) and relu(y + residual).

Weights wanted channels-last are laid out once at build time (tactic param weight_layout, applied
by builder/tactics); a kernel given NCHW weights (an engine file reloaded: weights are stored
contiguous) converts them once on its first call and keeps the copy. Activations stay NCHW in the
arena: an NHWC tactic converts its input and the runtime copies its NHWC result back."""
from __future__ import annotations

import threading

import torch

from ...ops.conv import conv_ref
from ...ops.spatial import resolve_pads
from ..device import is_cuda
from ..layer_shapes import FLOATS, LOW, is_weight
from ..registry import tactic_family
from ..weight_cache import cached
from . import tactic
from .epilogue import compile_expr

CL = torch.channels_last
CONV_TYPES = ("Conv", "fused.ConvAct")
_NOT_CONV = ("transpose", "epilogue", "output_padding", "output_shape")


def _to_cl(t):
    return t.contiguous(memory_format=CL)


def _conv2d_ok(layer, shapes) -> bool:
    """A 2-D (not transposed) convolution with a constant weight on float data."""
    x, w = shapes.inp(0), shapes.inp(1)
    return (layer.type in CONV_TYPES and not layer.attrs.get("transpose") and x is not None
            and is_weight(w) and len(w["shape"]) == 4 and len(x["shape"]) == 4
            and x["dtype"] in FLOATS and w["dtype"] == x["dtype"])


def epilogue_kind(layer) -> str | None:
    """'none', 'relu' (relu(y)), 'add_relu' (relu(y + extra0)) or None for other epilogues."""
    e = layer.attrs.get("epilogue")
    if not e:
        return "none"
    nodes, out = e["nodes"], e["out"]
    ops = [n for n in nodes if n["op"] not in ("input", "const")]
    top = nodes[out]
    if top["op"] != "Relu" or len(ops) > 2:
        return None
    arg = nodes[top["args"][0]]
    if arg == {"op": "input", "i": 0}:
        return "relu" if len(ops) == 1 else None
    if arg["op"] == "Add" and len(ops) == 2:
        ins = sorted((nodes[a].get("op"), nodes[a].get("i")) for a in arg["args"])
        return "add_relu" if ins == [("input", 0), ("input", 1)] else None
    return None


def _sym_pads(layer, shapes):
    """[ph, pw] when the conv's resolved padding is symmetric, else None."""
    x, w = shapes.inp(0), shapes.inp(1)
    a = layer.attrs
    st = a.get("strides") or [1, 1]
    dil = a.get("dilations") or [1, 1]
    pads = resolve_pads(a.get("auto_pad", "NOTSET"), list(x["shape"][2:]), list(w["shape"][2:]), st, dil,
                        a.get("pads"))
    return pads[:2] if pads[:2] == pads[2:] else None


_FLAG_LOCK = threading.Lock()


class _Algo:
    """Runs the calls inside with torch.backends.cudnn.benchmark set to what the tactic wants:
    True (algo=benchmark: cudnnFind, cached per shape in the process) or False (cuDNN heuristics).
    The flag is process-global, so every cuDNN tactic sets it under one lock: another thread's
    setting can never leak into a call (a find inside a CUDA-graph capture would break it)."""

    def __init__(self, bench: bool):
        self.bench = bench

    def __enter__(self):
        _FLAG_LOCK.acquire()
        self.saved = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = self.bench

    def __exit__(self, *exc):
        torch.backends.cudnn.benchmark = self.saved
        _FLAG_LOCK.release()


def _algo(params):
    """The context manager for the tactic's cuDNN algorithm choice."""
    return _Algo(params.get("algo") == "benchmark")


def _split(attrs):
    return {k: v for k, v in attrs.items() if k not in _NOT_CONV}, attrs.get("epilogue")


def conv2d_nhwc(layer, attrs, opset, device, params):
    """Convolution on channels-last activations and weights (+ the layer's epilogue, unfused)."""
    wcl = cached(_to_cl)
    conv, epi = _split(attrs)
    epi = compile_expr(epi, opset, device) if epi else None
    algo = _algo(params)

    def fn(inputs):
        x, w = inputs[0], inputs[1]
        b = inputs[2] if len(inputs) > 2 else None
        if not w.is_contiguous(memory_format=CL):
            w = wcl(w)
        with algo:
            y = conv_ref(_to_cl(x), w, b, **conv)
        return (epi([y, *inputs[3:]]) if epi else y,)
    return fn


def _pad_channels(t, c):
    """A channels-last copy of NCHW-logical t with channels zero-padded to c (one fill, one copy)."""
    n, cin, h, w = t.shape
    out = torch.empty((n, h, w, c), dtype=t.dtype, device=t.device)
    out[..., cin:].zero_()
    out[..., :cin].copy_(t.permute(0, 2, 3, 1))
    return out.permute(0, 3, 1, 2)


def _fused_setup(attrs, params):
    st = attrs.get("strides") or [1, 1]
    dil = attrs.get("dilations") or [1, 1]
    return st, list(params["pads"]), dil, attrs.get("group", 1), params.get("weight_layout") == "channels_last"


def conv2d_relu(layer, attrs, opset, device, params):
    """relu(conv(x, w) + b) in one cuDNN call (symmetric pads)."""
    st, pads, dil, group, cl = _fused_setup(attrs, params)
    wcl = cached(_to_cl)
    algo = _algo(params)
    cpad = params.get("cin_pad")
    wpad = cached(lambda w: _pad_channels(w, cpad))

    def fn(inputs):
        x, w = inputs[0], inputs[1]
        b = inputs[2] if len(inputs) > 2 else None
        if cpad:
            x, w = _pad_channels(x, cpad), wpad(w)
        elif cl:
            x, w = _to_cl(x), (w if w.is_contiguous(memory_format=CL) else wcl(w))
        with algo:
            return (torch.cudnn_convolution_relu(x, w, b, st, pads, dil, group),)
    return fn


def conv2d_add_relu(layer, attrs, opset, device, params):
    """relu(conv(x, w) + b + z) in one cuDNN call (z: the residual, same shape as the output)."""
    st, pads, dil, group, cl = _fused_setup(attrs, params)
    wcl = cached(_to_cl)
    algo = _algo(params)

    def fn(inputs):
        x, w, b, z = inputs[0], inputs[1], inputs[2], inputs[3]
        if cl:
            x, w, z = _to_cl(x), (w if w.is_contiguous(memory_format=CL) else wcl(w)), _to_cl(z)
        with algo:
            return (torch.cudnn_convolution_add_relu(x, w, z, 1.0, b, st, pads, dil, group),)
    return fn


@tactic_family("aten", {"conv2d_nhwc": conv2d_nhwc, "conv2d_relu": conv2d_relu, "conv2d_add_relu": conv2d_add_relu},
               library="CUDNN")
def conv_candidates(layer, shapes, device):
    """cuDNN fused tactics first (CUDA), then NHWC conv; the reference is NCHW."""
    if not _conv2d_ok(layer, shapes):
        return []
    out = []
    kind = epilogue_kind(layer)
    if is_cuda(device) and kind in ("relu", "add_relu") and _sym_pads(layer, shapes) is not None:
        res, out0 = shapes.inp(3), shapes.out(0)
        if kind == "relu" or (res is not None and out0 is not None and res["shape"] == out0["shape"]
                              and res["dtype"] == out0["dtype"]):
            pads = _sym_pads(layer, shapes)
            cin = shapes.inp(1)["shape"][1]
            if cin % 4 and cin < 4 and kind == "relu" and shapes.inp(0)["dtype"] in LOW:
                # stem convs (RGB): an NHWC input zero-padded to 4 channels takes cuDNN's tensor-core
                # kernels directly (else cuDNN pads activations and weights itself on every call)
                out.append(tactic("conv2d_relu", weight_layout="channels_last", pads=pads, cin_pad=4))
            out += [tactic(f"conv2d_{kind}", weight_layout="channels_last", pads=pads),
                    tactic(f"conv2d_{kind}", weight_layout="channels_last", pads=pads, algo="benchmark"),
                    tactic(f"conv2d_{kind}", pads=pads)]
    # on CPU (speed is not the point there) only the extended search (level >= 4) tries it
    out.append(tactic("conv2d_nhwc", level=1 if is_cuda(device) else 4, weight_layout="channels_last"))
    if is_cuda(device):
        out.append(tactic("conv2d_nhwc", weight_layout="channels_last", algo="benchmark"))
    return out
