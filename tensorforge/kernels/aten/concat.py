"""Tactic "concat_copy" for fused.Concat: each input copied straight into its slice of the output
buffer the runtime gives (a nearest-upsampled input through zero-stride views, ops.nearest): one
copy per input, no upsampled tensor and no concatenated temporary to copy into the arena."""
from __future__ import annotations

import torch

from ...ops.nearest import broadcast_view, split_view
from ..registry import tactic_family
from . import tactic


class ConcatCopy:
    """fn(inputs, outs) writing the concatenation into outs[0] (or a fresh tensor)."""

    takes_out = True

    def __init__(self, axis: int, upsample):
        self.axis, self.upsample = axis, upsample

    def __call__(self, inputs, outs=None):
        ups = self.upsample or [None] * len(inputs)
        shapes = [[d * s for d, s in zip(x.shape, f)] if f else list(x.shape) for x, f in zip(inputs, ups)]
        ax = self.axis % len(shapes[0])
        shape = list(shapes[0])
        shape[ax] = sum(s[ax] for s in shapes)
        out = outs[0] if outs and outs[0] is not None and list(outs[0].shape) == shape else None
        if out is None:
            out = torch.empty(shape, dtype=inputs[0].dtype, device=inputs[0].device)
        at = 0
        for x, f, s in zip(inputs, ups, shapes):
            dst = out.narrow(ax, at, s[ax])
            at += s[ax]
            if dst.numel() == 0:
                continue
            if f:
                split_view(dst, f).copy_(broadcast_view(x, f))
            else:
                dst.copy_(x)
        return [out]


def concat_factory(layer, attrs, opset, device, params):
    return ConcatCopy(int(attrs["axis"]), attrs.get("upsample"))


@tactic_family("aten", {"concat_copy": concat_factory}, library="ATEN", writes_in_place=True, needs_shapes=False)
def concat_candidates(layer, shapes, device):
    """fused.Concat (inputs read through nearest upsamples): one copy per input into the output."""
    return [tactic("concat_copy")] if layer.type == "fused.Concat" else []
