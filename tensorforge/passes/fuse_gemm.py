"""GEMM fusions: MatMul + scale, MatMul + bias, Gemm + bias (the activation / residual epilogue
is added by fuse_epilogue)."""
from __future__ import annotations

from ..ir import Graph
from .rewrite import Const, Decline, Op, Rule, fits_into, fuse, rule_pass, scalar

_MM = Op(("MatMul", "fused.MatMulAct"), any_args=True, name="mm",
         where=lambda n: n.op == "MatMul" or (not n.attrs.get("epilogue") and (len(n.inputs) < 3 or n.inputs[2] is None)))


def _mm_parts(mm):
    a, b = mm.inputs[0], mm.inputs[1]
    return a, b, float(mm.attrs.get("alpha", 1.0))


def matmul_scale(g: Graph, m) -> bool:
    """(A·B)·c -> MatMulAct(A, B; alpha=c); (A·B)/c -> alpha=1/c (c a scalar constant)."""
    mm, root = m["mm"], m.root
    c = scalar(m["c"])
    y = root.outputs[0]
    if c is None or (root.op == "Div" and (root.inputs[1] is not m["c"] or c == 0)):
        return Decline("not a product or quotient by a non-zero scalar constant")
    if len(y.shape) != len(mm.outputs[0].shape) or y.dtype not in ("float16", "float32", "float64", "bfloat16"):
        return Decline("the scale broadcasts to a higher rank or the dtype is not floating")
    a, b, alpha = _mm_parts(mm)
    alpha *= c if root.op == "Mul" else 1.0 / c
    fuse(g, [mm, root], "fused.MatMulAct", [a, b, None], {"alpha": alpha}, [y], "MatMulScale")
    return True


def matmul_bias(g: Graph, m) -> bool:
    """A·B + bias -> MatMulAct(A, B, bias[N]) for a constant bias along the output's last dim; a
    one-element bias (scalar, [1], [1, 1]) is broadcast to [N] explicitly (N must be static)."""
    mm, bias = m["mm"], m["c"]
    y = mm.outputs[0]
    if len(y.shape) < 2 or not fits_into(bias.shape, y.shape) or bias.dtype != y.dtype or \
            any(d != 1 for d in bias.shape[:-1]):
        return Decline("the addend is not a bias along the output's last dim (or has another dtype)")
    n = y.shape[-1]
    bv = _bias_vector(g, bias, n)
    if bv is None:
        return Decline("one-element bias with a symbolic output width")
    a, b, alpha = _mm_parts(mm)
    fuse(g, [mm, m.root], "fused.MatMulAct", [a, b, bv], {"alpha": alpha}, [m.root.outputs[0]], "MatMulBias")
    return True


def _bias_vector(g: Graph, bias, n):
    """The [n] bias Value for a constant of shape [..., 1, n] or one element; None if n is symbolic."""
    if tuple(bias.shape) == (n,):
        return bias
    if not isinstance(n, int):
        return None
    data = bias.const.reshape(-1)
    data = data.expand(n) if data.numel() == 1 else data.reshape(n)
    return g.const(data.contiguous(), g.unique_name(bias.name))


def gemm_bias(g: Graph, m) -> bool:
    """Gemm(A, B) + C -> Gemm(A, B, C; beta=1) for a constant C broadcastable to the output."""
    gm, c = m["gemm"], m["c"]
    y = gm.outputs[0]
    if len(gm.inputs) > 2 and gm.inputs[2] is not None:
        return Decline("the Gemm already has a C input")
    if not fits_into(c.shape, y.shape) or c.dtype != y.dtype:
        return Decline("the addend does not broadcast into the output or has another dtype")
    attrs = dict(gm.attrs, beta=1.0)
    fuse(g, [gm, m.root], "Gemm", [gm.inputs[0], gm.inputs[1], c], attrs, [m.root.outputs[0]], "GemmBias")
    return True


RULES = [
    Rule("MatMulScale", Op(("Mul", "Div"), _MM, Const("c")), matmul_scale),
    Rule("MatMulBias", Op("Add", _MM, Const("c", scalar=False)), matmul_bias),
    Rule("GemmBias", Op("Add", Op("Gemm", any_args=True, name="gemm"), Const("c", scalar=False)), gemm_bias),
]
fuse_gemm = rule_pass("fuse_gemm", RULES)
