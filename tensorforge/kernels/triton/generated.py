"""Triton families of generated kernels (codegen): fused pointwise layers, softmax, layernorm /
rmsnorm (+ epilogue), reductions with pointwise prologues, and Conv/Gemm/MatMul epilogues (the
torch op, then one generated pointwise kernel). Runners are imported at the first kernel made."""
from __future__ import annotations

import math

from ..registry import tactic_family
from . import reference, tactic_dict

EPILOGUE_TYPES = {"fused.ConvAct": 3, "fused.GemmAct": 3, "fused.MatMulAct": 3}
FAMILY = dict(library="TRITON", writes_in_place=True, needs_shapes=False)


def _trailing(axes) -> bool:
    ax = sorted(int(a) for a in axes)
    return bool(ax) and all(a < 0 for a in ax) and ax == list(range(-len(ax), 0))


def pointwise_kernel(layer, attrs, opset, device, params):
    from .runners import PointwiseRunner
    return PointwiseRunner(attrs, params, reference(layer, attrs, opset))


@tactic_family("triton", {"pointwise": pointwise_kernel}, **FAMILY)
def pointwise_candidates(layer, shapes, device) -> list[dict]:
    """fused.Pointwise: two block sizes."""
    if layer.type != "fused.Pointwise":
        return []
    return [tactic_dict("pointwise", BLOCK=1024, num_warps=4), tactic_dict("pointwise", BLOCK=2048, num_warps=8)]


def softmax_kernel(layer, attrs, opset, device, params):
    from .runners import SoftmaxRunner
    return SoftmaxRunner(attrs, params, reference(layer, attrs, opset), layer.type == "fused.LogSoftmax")


@tactic_family("triton", {"softmax": softmax_kernel}, **FAMILY)
def softmax_candidates(layer, shapes, device) -> list[dict]:
    """fused.Softmax / fused.LogSoftmax over trailing axes."""
    if layer.type not in ("fused.Softmax", "fused.LogSoftmax") or not _trailing(layer.attrs.get("axes", [-1])):
        return []
    return [tactic_dict("softmax", num_warps=4), tactic_dict("softmax", num_warps=8)]


def reduce_kernel(layer, attrs, opset, device, params):
    from .runners import ReduceRunner
    return ReduceRunner(attrs, params, reference(layer, attrs, opset))


@tactic_family("triton", {"reduce": reduce_kernel}, **FAMILY)
def reduce_candidates(layer, shapes, device) -> list[dict]:
    """fused.Reduce over trailing axes (not prod)."""
    a = layer.attrs
    if layer.type != "fused.Reduce" or not _trailing(a["axes"]) or a["kind"] == "prod":
        return []
    return [tactic_dict("reduce", num_warps=4)]


def epilogue_kernel(layer, attrs, opset, device, params):
    """The anchor op (torch, without its epilogue), then one generated kernel for the epilogue."""
    from ...ops import registry as ops
    from .runners import EpilogueRunner
    op = ops.get(layer.type, layer.domain, layer.name)
    bare = {k: v for k, v in attrs.items() if k != "epilogue"}

    def anchor(inputs):
        return op.run(inputs, bare, opset)[0]
    return EpilogueRunner(attrs, params, reference(layer, attrs, opset), anchor, EPILOGUE_TYPES[layer.type])


@tactic_family("triton", {"epilogue": epilogue_kernel}, **FAMILY)
def epilogue_candidates(layer, shapes, device) -> list[dict]:
    """Conv / Gemm / MatMul layers with a fused epilogue."""
    if layer.type not in EPILOGUE_TYPES or not layer.attrs.get("epilogue"):
        return []
    x = shapes.inp(0) if shapes is not None else None
    if layer.type == "fused.ConvAct" and x is not None and len(x["shape"]) == 4 and \
            getattr(device, "type", str(device)) == "cuda":  # a 2-D conv: channels-last, in an NHWC chain
        return [tactic_dict("epilogue", BLOCK=1024, num_warps=4, nhwc_ok=True, weight_layout="channels_last")]
    return [tactic_dict("epilogue", BLOCK=1024, num_warps=4)]


def norm_kernel(layer, attrs, opset, device, params):
    from .runners import NormRunner
    return NormRunner(attrs, params, reference(layer, attrs, opset), layer.type == "fused.RMSNorm")


# row-length tier (next pow2, up to) -> level-3 and level-4 (ROWS, num_warps); at <= 1024 ROWS is
# given for 1024-element rows and scales up for shorter ones (same elements per program, <= 64 rows)
_NORM_CFGS = (
    (1024, [(4, 4), (8, 8), (2, 4), (1, 4)], [(16, 8), (4, 8), (8, 4), (2, 2), (1, 2)]),
    (2048, [(2, 8), (1, 8), (1, 4), (4, 8)], [(8, 8), (2, 4), (1, 16), (4, 16)]),
    (4096, [(1, 8), (2, 8), (1, 16), (1, 4)], [(4, 8), (2, 16), (4, 16)]),
    (8192, [(1, 8), (1, 16), (1, 4)], [(2, 8), (2, 16)]),
    (None, [(1, 8), (1, 4)], [(1, 16), (2, 8)]),  # looped (rows over 8192 elements)
)


@tactic_family("triton", {"norm": norm_kernel}, **FAMILY)
def norm_candidates(layer, shapes, device) -> list[dict]:
    """"norm" configs for fused.LayerNorm / fused.RMSNorm by row length (a safe default list
    when the shapes are unknown)."""
    if layer.type not in ("fused.LayerNorm", "fused.RMSNorm"):
        return []
    shape = ((shapes.inp(0) if shapes is not None else None) or {}).get("shape")
    if not shape or not all(isinstance(d, int) and d > 0 for d in shape):
        return [tactic_dict("norm", ROWS=1, num_warps=4), tactic_dict("norm", ROWS=4, num_warps=4),
                tactic_dict("norm", ROWS=1, num_warps=8)]
    axis = int(layer.attrs.get("axis", -1)) % len(shape)
    n, m = math.prod(shape[axis:]), math.prod(shape[:axis])
    bn = 16
    while bn < n:
        bn *= 2
    tier = next(t for t in _NORM_CFGS if t[0] is None or bn <= t[0])
    scale = max(1, 1024 // bn) if tier[0] == 1024 else 1
    most = min(64, 1 << (m - 1).bit_length())  # more rows than M would only repeat a config

    def rows(cfgs):
        return [(min(most, r * scale), w) for r, w in cfgs]
    l3 = rows(tier[1])
    if m < 1024:  # few rows: more programs first (the level-0 pick)
        l3.sort(key=lambda c: c[0])
    out, seen = [], set()
    for lvl, cfgs in ((3, l3), (4, rows(tier[2]))):
        for r, w in cfgs:
            if (r, w) not in seen:
                seen.add((r, w))
                out.append(dict(tactic_dict("norm", ROWS=r, num_warps=w), **({"level": 4} if lvl == 4 else {})))
    return out
