"""fused.Concat: a Concat that reads some inputs through a nearest upsample by integer factors.

    y = Concat(up(x_0, f_0), up(x_1, f_1), ..., axis)      up(x, f)[.., i, ..] = x[.., i // f, ..]

Attrs: axis, upsample (per input: per-axis integer factors, or null for an input read as is). The
reference materializes each upsample (ops.nearest) and concatenates, like the unfused Resize layers."""
from __future__ import annotations

import torch

from ...ir.symbolic import norm
from ..common import norm_axis
from ..nearest import upsample_nearest
from ..registry import infer, reference
from .epilogue import upsampled_shape


@reference("fused.Concat")
def concat_ref(*xs, axis, upsample=None):
    ups = upsample or [None] * len(xs)
    return torch.cat([x if not f else upsample_nearest(x, f) for x, f in zip(xs, ups)], dim=axis)


@infer("fused.Concat")
def concat_infer(node):
    ups = node.attrs.get("upsample") or [None] * len(node.inputs)
    shapes = [upsampled_shape(v.shape, f) for v, f in zip(node.inputs, ups)]
    ax = norm_axis(node.attrs["axis"], len(shapes[0]))
    out = list(shapes[0])
    out[ax] = norm(sum((s[ax] for s in shapes), 0))
    return [(node.inputs[0].dtype, tuple(out))]
