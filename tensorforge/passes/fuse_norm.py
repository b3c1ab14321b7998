"""Normalization fusion: LayerNorm and RMSNorm from their decomposed forms (and the ONNX
LayerNormalization op) become fused.LayerNorm / fused.RMSNorm; a following per-feature scale
and shift are folded in as gamma / beta."""
from __future__ import annotations

from ..ir import Graph
from ..ops.common import attr_or_input
from .rewrite import Alt, Const, Decline, Op, Rule, Var, fits_into, fuse, rule_pass

FLOATS = ("float16", "float32", "float64", "bfloat16")
NOT_TRAILING = "the reductions are not over the same trailing axes with keepdims, or x is not floating"
NOT_PER_FEATURE = "the parameter is not a constant varying only along the normalized axes"


def trailing_axes(n, rank):
    """k when a keepdims reduction node reduces exactly the last k axes, else None."""
    axes = attr_or_input(n, "axes", 1)
    if axes is None:
        if n.attrs.get("noop_with_empty_axes", 0):
            return None
        axes = list(range(rank))
    axes = sorted({a % rank for a in axes}) if rank else []
    if not axes or axes != list(range(rank - len(axes), rank)) or not n.attrs.get("keepdims", 1):
        return None
    return len(axes)


def _mean(x, name):
    return Op("ReduceMean", x, name=name, prefix=True)


def _square(v):
    return Alt(Op("Pow", v, Const(value=2.0)), Op("Mul", v, v))


def _inv_std(var, eps):
    """The normalizer: d / sqrt(var + eps) or d * reciprocal(sqrt(var + eps))."""
    return Op("Sqrt", Op("Add", var, Const(eps)), name="sqrt")


_LN_D = Op("Sub", Var("x"), _mean(Var("x"), "mean"), name="d")
_LN_STD = _inv_std(_mean(_square(Var("d")), "var"), "eps")
LN = Alt(Op("Div", _LN_D, _LN_STD, name="root"),
         Op("Mul", _LN_D, Op("Reciprocal", _LN_STD), name="root"))
_RMS_STD = _inv_std(_mean(_square(Var("x")), "var"), "eps")
RMS = Alt(Op("Div", Var("x"), _RMS_STD, name="root"),
          Op("Mul", Var("x"), Op("Reciprocal", _RMS_STD), name="root"))


def _norm_axes(g, m, reducers):
    x = m["x"]
    rank = len(x.shape)
    ks = {trailing_axes(m[r], rank) for r in reducers}
    if len(ks) != 1 or None in ks or x.dtype not in FLOATS:
        return None
    return -ks.pop()


def layernorm(g: Graph, m) -> bool:
    """(x - mean(x)) / sqrt(mean((x - mean(x))²) + eps) over the last k axes -> LayerNorm(x)."""
    axis = _norm_axes(g, m, ("mean", "var"))
    if axis is None:
        return Decline(NOT_TRAILING)
    fuse(g, m.nodes, "fused.LayerNorm", [m["x"], None, None], {"axis": axis, "epsilon": m.scalar("eps")},
         [m.root.outputs[0]], "LayerNorm")
    return True


def rmsnorm(g: Graph, m) -> bool:
    """x / sqrt(mean(x²) + eps) over the last k axes -> RMSNorm(x)."""
    axis = _norm_axes(g, m, ("var",))
    if axis is None:
        return Decline(NOT_TRAILING)
    fuse(g, m.nodes, "fused.RMSNorm", [m["x"], None], {"axis": axis, "epsilon": m.scalar("eps")},
         [m.root.outputs[0]], "RMSNorm")
    return True


def _param_fits(p, norm_node) -> bool:
    """A gamma/beta constant that varies only along the normalized axes."""
    x = norm_node.inputs[0]
    k = -norm_node.attrs["axis"]
    return p.const is not None and fits_into(p.shape, x.shape) and \
        all(d == 1 for d in p.shape[:max(0, len(p.shape) - k)])


def norm_scale(g: Graph, m) -> bool:
    """Norm(x; γ=1) · γ -> Norm(x; γ) for γ constant over the normalized axes."""
    n, p = m["norm"], m["p"]
    if n.inputs[1] is not None or n.attrs.get("epilogue"):
        return Decline("the norm already has a scale or an epilogue")
    if not _param_fits(p, n):
        return Decline(NOT_PER_FEATURE)
    ins = list(n.inputs)
    ins[1] = p
    fuse(g, [n, m.root], n.op, ins, n.attrs, [m.root.outputs[0]], "NormScale")
    return True


def norm_bias(g: Graph, m) -> bool:
    """LayerNorm(x; β=0) + β -> LayerNorm(x; β) for β constant over the normalized axes."""
    n, p = m["norm"], m["p"]
    if n.inputs[2] is not None or n.attrs.get("epilogue"):
        return Decline("the norm already has a shift or an epilogue")
    if not _param_fits(p, n):
        return Decline(NOT_PER_FEATURE)
    ins = list(n.inputs)
    ins[2] = p
    fuse(g, [n, m.root], n.op, ins, n.attrs, [m.root.outputs[0]], "NormBias")
    return True


def layernorm_op(g: Graph, m) -> bool:
    """LayerNormalization(x, γ, β; axis, ε) [one output] -> fused.LayerNorm(x, γ, β)."""
    n = m.root
    x = n.inputs[0]
    if len(n.outputs) != 1 or x.dtype not in FLOATS or n.attrs.get("stash_type", 1) != 1:
        return Decline("mean/inv-std outputs used, a non-float input or stash_type != 1")
    axis = n.attrs.get("axis", -1) % len(x.shape) - len(x.shape)
    ins = [x, n.inputs[1], n.inputs[2] if len(n.inputs) > 2 else None]
    fuse(g, [n], "fused.LayerNorm", ins, {"axis": axis, "epsilon": n.attrs.get("epsilon", 1e-5)},
         [n.outputs[0]], "LayerNormalization")
    return True


_NORM = Op(("fused.LayerNorm", "fused.RMSNorm"), any_args=True, name="norm")
RULES = [
    Rule("LayerNorm", LN, layernorm),
    Rule("RMSNorm", RMS, rmsnorm),
    Rule("LayerNormOp", Op("LayerNormalization", any_args=True), layernorm_op),
    Rule("NormScale", Op("Mul", _NORM, Const("p", scalar=False)), norm_scale),
    Rule("NormBias", Op("Add", Op("fused.LayerNorm", any_args=True, name="norm"), Const("p", scalar=False)),
         norm_bias),
]
fuse_norms = rule_pass("fuse_norms", RULES)
