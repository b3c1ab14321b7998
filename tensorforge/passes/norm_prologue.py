"""A pointwise layer read only by a LayerNorm / RMSNorm becomes the norm's prologue:

    f(a, b, ...) -> Norm      ==>      Norm[prologue = f](a, ..., b, ...)

One kernel less, and one round trip of the activation through memory less. Where it applies in the zoo:
- BERT's three-embedding sum before its first LayerNorm;
- ViT's position-embedding Add before the first block's norm. In the FP8 engine only: there the first residual
  reads the norm's e4m3 side output (passes/quant/skip_norm, rule SkipQ), not the sum; in the FP16 engine the
  sum is also the first residual, so it stays.
- ViT-B/16 bs 32 on the H200 (session 13, FP8 engine): that Add took 0.015 ms in the eager per-layer profile.
  Expected: ~7 µs less in a CUDA graph (a 9.7 MB fp16 read and write).

Only where the normalized row is short enough for the single-pass norm kernel (the only norm tactic with a prologue
besides the reference), f's output has the norm's input shape and type, one of f's inputs has that shape and type
too (the norm's input 0), and the norm has no prologue yet. The norm's extras keep their indices (its epilogue and
side output read them); f's other inputs follow them. Numerics: the prologue's result is rounded to the input's
type, as f's output was."""
from __future__ import annotations

import math

from ..ir import Graph
from ..ops.fused.expr import expr_dtype
from .exprs import Composer, is_pointwise
from .rewrite import Decline, Op, Rule, fuse, rule_pass

MAX_ROW = 8192  # the single-pass norm kernel's longest row (kernels/triton/runners.NormRunner)
FLOATS = ("float16", "bfloat16", "float32")
NORMS = ("fused.LayerNorm", "fused.RMSNorm")


def short_row(v, attrs) -> bool:
    """The norm of v over attrs' axis has rows of a known length the single-pass kernel takes."""
    axis = int(attrs.get("axis", -1)) % max(1, len(v.shape))
    row = v.shape[axis:]
    return all(isinstance(d, int) for d in row) and math.prod(row) <= MAX_ROW


def norm_prologue(g: Graph, m) -> bool:
    """f(a, b, ...) -> Norm  ==>  Norm[prologue f](a, ..., b, ...) for a pointwise f read by the norm alone."""
    n = m.root
    if n.attrs.get("prologue"):
        return Decline("the norm has a prologue already")
    v = n.inputs[0]
    p = v.producer if v is not None else None
    if p is None or not is_pointwise(p):
        return Decline("the norm's input is not a pointwise layer's")
    if g.is_output(v) or any(u is not n for u in v.users) or any(x is v for x in n.inputs[1:]):
        return Decline("the pointwise result has other readers")
    if v.dtype not in FLOATS or not short_row(v, n.attrs):
        return Decline("not a float row the single-pass norm kernel takes")
    full = [u for u in p.inputs if u is not None and u.dtype == v.dtype and tuple(u.shape) == tuple(v.shape)]
    if not full:
        return Decline("no input of the pointwise layer has the norm's input shape and type")
    k = 3 if n.op == "fused.LayerNorm" else 2
    lead = list(n.inputs[:k]) + [None] * (k - len(n.inputs[:k]))
    c = Composer(inputs=[full[0]] + list(n.inputs[k:]), max_rank=len(v.shape))
    pro = c.build(c.node(p, c.leaf))
    if not c.covers(v.shape) or expr_dtype(pro, [u.dtype for u in c.inputs]) != v.dtype:
        return Decline("the pointwise expression does not keep the norm's input shape and type")
    if any(u.dtype not in FLOATS for u in c.inputs[1 + len(n.inputs[k:]):]):
        return Decline("an input of the pointwise layer is not a float tensor (the norm kernel reads float extras)")
    fuse(g, [p, n], n.op, [full[0]] + lead[1:] + c.inputs[1:], {**n.attrs, "prologue": pro}, list(n.outputs),
         "NormPrologue", name=n.name)
    return True


norm_prologues = rule_pass("norm_prologues", [Rule("NormPrologue", Op(NORMS, any_args=True), norm_prologue)])
