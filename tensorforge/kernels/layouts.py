"""NHWC activations of a layout chain (tactic params in_nhwc / out_nhwc, set by builder.layout):
a kernel reads such inputs and writes such outputs as NHWC bytes held in NCHW-shaped buffers."""
from __future__ import annotations


def with_layouts(fn, params):
    """Read inputs in_nhwc / write outputs out_nhwc as NHWC bytes in NCHW-shaped buffers."""
    ins, outs = set(params.get("in_nhwc", ())), set(params.get("out_nhwc", ()))
    if not ins and not outs:
        return fn
    if getattr(fn, "takes_out", False):
        return _layouts_out(fn, ins, outs)

    def wrapped(inputs):
        inputs = [logical(t) if i in ins and t is not None else t for i, t in enumerate(inputs)]
        res = fn(inputs)
        return tuple(raw(r) if i in outs else r for i, r in enumerate(res))
    return wrapped


def _layouts_out(fn, ins, outs):
    """with_layouts for kernels that write into the runtime's buffers (takes_out): an NHWC output
    buffer is passed as its channels-last view, so the kernel writes it in place (no copy)."""
    def wrapped(inputs, bufs=None):
        inputs = [logical(t) if i in ins and t is not None else t for i, t in enumerate(inputs)]
        views = [b if i not in outs or b is None else logical(b) if b.is_contiguous() else None
                 for i, b in enumerate(bufs or [])]
        res = fn(inputs, views or None)
        return tuple(bufs[i] if i < len(views) and views[i] is not None and r is views[i]
                     else raw(r) if i in outs else r for i, r in enumerate(res))
    wrapped.takes_out = True
    return wrapped


def logical(t):
    """NHWC bytes held in an NCHW-shaped contiguous buffer -> the logical tensor (channels-last view)."""
    n, c, h, w = t.shape
    return t.view(n, h, w, c).permute(0, 3, 1, 2)


def raw(t):
    """A logical NCHW tensor -> its NHWC bytes as an NCHW-shaped contiguous tensor (no copy if NHWC)."""
    import torch
    return t.contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1).reshape(t.shape)
