"""The aten tactic source: layers run through torch ops (cuBLAS/cuBLASLt, cuDNN, SDPA on CUDA; ATen
CPU kernels on CPU).

Tactic "reference" runs the op's reference implementation. Other tactics are variants registered
by the modules of this package (gemm, conv, attention): `@variant(name, library)` registers a
kernel factory `f(layer, attrs, opset, device, params) -> fn(inputs) -> outputs`, and `@offers`
registers a candidates function `g(layer, device) -> [tactic, ...]`.

Candidates functions read the layer's concrete shapes from `layer.shape_info` (set by the builder
while it selects tactics): {"inputs": [{"dtype", "shape", "kind"} | None, ...], "outputs": [...]}
at the profile's opt shapes; without it only the reference is offered. A tactic may carry a
top-level "level" key: the lowest builder optimization level that considers it (default 1).
"""
from __future__ import annotations

from ...errors import EngineFormatError
from ...ir.attrs import from_json
from ...ops import registry
from .. import register_source

REFERENCE = {"source": "aten", "name": "reference", "params": {}}
_VARIANTS: dict = {}
_LIBRARY: dict = {}
_OFFERS: list = []


def variant(name: str, library: str = "ATEN"):
    """Register a kernel factory for tactic `name` (library: the --tacticSources name it belongs to)."""
    def deco(fn):
        _VARIANTS[name] = fn
        _LIBRARY[name] = library
        return fn
    return deco


def offers(fn):
    """Register a candidates function `fn(layer, device) -> list of tactics`."""
    _OFFERS.append(fn)
    return fn


def library_of(tactic: dict) -> str:
    """The tactic-source library a tactic belongs to (CUBLAS, CUBLAS_LT, CUDNN, ATEN, TRITON...)."""
    if tactic.get("source") != "aten":
        return str(tactic.get("source", "")).upper()
    name = tactic.get("name")
    if name == "sdpa":
        return {"cudnn": "CUDNN"}.get(tactic.get("params", {}).get("backend"), "ATEN")
    return _LIBRARY.get(name, "ATEN")


def tactic(name: str, level: int = 1, **params) -> dict:
    """A tactic dict of this source (level: lowest optimization level that times it)."""
    t = {"source": "aten", "name": name, "params": params}
    if level > 1:
        t["level"] = level
    return t


def _factory(layer, opset, device):
    attrs = {k: from_json(a) for k, a in layer.attrs.items()}
    name = layer.tactic.get("name", "reference")
    params = dict(layer.tactic.get("params", {}))
    if name != "reference":
        make = _VARIANTS.get(name)
        if make is None:
            raise EngineFormatError(f"layer '{layer.name}': unknown aten tactic '{name}'")
        return _layouts(make(layer, attrs, opset, device, params), params)
    op = registry.get(layer.type, layer.domain, layer.name)
    run = op.run
    n_out = len(layer.outputs)

    def fn(inputs):
        return run(inputs, attrs, opset, n_out, device)
    if "eager_reason" in op.extra:  # host syncs inside (control flow): never captured in a CUDA graph
        fn.capturable = False
    return _layouts(fn, params)


def _layouts(fn, params):
    """Read inputs in_nhwc / write outputs out_nhwc as NHWC bytes in NCHW-shaped buffers."""
    ins, outs = set(params.get("in_nhwc", ())), set(params.get("out_nhwc", ()))
    if not ins and not outs:
        return fn
    if getattr(fn, "takes_out", False):
        return _layouts_out(fn, ins, outs)

    def wrapped(inputs):
        inputs = [_logical(t) if i in ins and t is not None else t for i, t in enumerate(inputs)]
        res = fn(inputs)
        return tuple(_raw(r) if i in outs else r for i, r in enumerate(res))
    return wrapped


def _layouts_out(fn, ins, outs):
    """_layouts for kernels that write into the runtime's buffers (takes_out): an NHWC output
    buffer is passed as its channels-last view, so the kernel writes it in place (no copy)."""
    def wrapped(inputs, bufs=None):
        inputs = [_logical(t) if i in ins and t is not None else t for i, t in enumerate(inputs)]
        views = [b if i not in outs or b is None else _logical(b) if b.is_contiguous() else None
                 for i, b in enumerate(bufs or [])]
        res = fn(inputs, views or None)
        return tuple(bufs[i] if i < len(views) and views[i] is not None and r is views[i]
                     else _raw(r) if i in outs else r for i, r in enumerate(res))
    wrapped.takes_out = True
    return wrapped


def _logical(t):
    """NHWC bytes held in an NCHW-shaped contiguous buffer -> the logical tensor (channels-last view)."""
    n, c, h, w = t.shape
    return t.view(n, h, w, c).permute(0, 3, 1, 2)


def _raw(t):
    """A logical NCHW tensor -> its NHWC bytes as an NCHW-shaped contiguous tensor (no copy if NHWC)."""
    import torch
    return t.contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1).reshape(t.shape)


def _candidates(layer, device):
    out = []
    if getattr(layer, "shape_info", None) is not None:
        for fn in _OFFERS:
            out += [t for t in fn(layer, device) if t is not None]
    return out + [dict(REFERENCE)]


register_source("aten", _factory, _candidates)

from . import attention, conv, gemm, gemm_lt  # noqa: E402,F401  (register variants)
