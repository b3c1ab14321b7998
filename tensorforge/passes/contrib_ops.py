"""com.microsoft contrib ops rewritten into standard ONNX ops, so the usual fusions apply to them.

Algebra (each output keeps its Value; the ONNX ops are those ORT's fusions replaced):
  Gelu(x) -> Gelu(x);  BiasGelu(a, b) -> Gelu(a + b);  FastGelu(x, b) -> Gelu_tanh(x + b)
  QuickGelu(x; α) -> x · Sigmoid(α·x);  BiasAdd(x, b, s) -> (x + b) + s
  SkipLayerNormalization(x, s, γ, β, b) -> LayerNormalization((x + s) + b, γ, β), sum output = (x + s) + b
  FusedConv(x, w, b, z; act) -> act(Conv(x, w, b) + z);  FusedGemm(a, b, c; act) -> act(Gemm(a, b, c))
  FusedMatMul(a, b; α, transA, transB) -> α · (Transpose(a) @ Transpose(b))
  MatMulNBits(a, B, s, z, bias) with constant B, s, z -> MatMul(a, Wᵀ) + bias, W dequantized once here
  SkipSimplifiedLayerNormalization(x, s, γ, b) -> fused.RMSNorm((x + s) + b, γ); ORT's
  SimplifiedLayerNormalization(x, γ) (ONNX domain) -> fused.RMSNorm(x, γ)
A normalization whose mean / inv_std_var outputs are used stays as it is."""
from __future__ import annotations

import logging

import torch

from .. import dtypes
from ..ir import Graph
from ..ops.contrib import MS
from ..ops.contrib.nbits import dequantize_nbits

log = logging.getLogger("tensorforge")

# FusedConv / FusedGemm activation -> (ONNX op, attribute names its parameters map to)
_ACTS = {"Relu": ("Relu", ()), "Tanh": ("Tanh", ()), "Sigmoid": ("Sigmoid", ()), "LeakyRelu": ("LeakyRelu", ("alpha",)),
         "HardSigmoid": ("HardSigmoid", ("alpha", "beta")), "Elu": ("Elu", ("alpha",)), "Softsign": ("Softsign", ()),
         "Softplus": ("Softplus", ()), "Clip": ("Clip", None)}


class _Emit:
    """Adds ONNX nodes in place of one contrib node, named after it."""

    def __init__(self, g: Graph, node):
        self.g, self.node, self.index = g, node, g.nodes.index(node)

    def __call__(self, op, inputs, attrs=None, out=None, like=None, main=False):
        """One node; out: the Value it produces (a new one shaped like `like` when None); the main
        node keeps the contrib node's name."""
        g = self.g
        if out is None:
            out = g.new_value(f"{self.node.name}/{op.lower()}", like.dtype, like.shape)
        name = self.node.name if main else f"{self.node.name}/{op}"
        g.add_node(op, inputs, [out], attrs or {}, name=g.unique_node_name(name), index=self.index,
                   origin=[self.node.name])
        self.index += 1
        return out


def _activation(emit, g, act, params, x, out):
    op, names = _ACTS[act]
    if op == "Clip":
        lo, hi = (list(params) + [None, None])[:2]
        bounds = [g.const(_scalar(x, v), f"{emit.node.name}/clip") if v is not None else None for v in (lo, hi)]
        return emit("Clip", [x] + bounds, out=out)
    return emit(op, [x], dict(zip(names, params)), out=out)


def _swap_last(emit, v, tag):
    """Transpose of v's last two axes."""
    r = len(v.shape)
    perm = list(range(r - 2)) + [r - 1, r - 2]
    out = emit.g.new_value(f"{emit.node.name}/{tag}", v.dtype, tuple(v.shape[:-2]) + (v.shape[-1], v.shape[-2]))
    return emit("Transpose", [v], {"perm": perm}, out=out)


def _scalar(like, v):
    return torch.tensor(v, dtype=dtypes.to_torch(like.dtype))


def _rewrite(g: Graph, n) -> bool:
    """Replace one contrib node; False when it has no plain-ONNX form here."""
    ins, outs, a = n.inputs, n.outputs, n.attrs
    arg = lambda i: ins[i] if i < len(ins) else None  # noqa: E731
    y = outs[0]
    if n.op in ("FusedConv", "FusedGemm"):
        act = a.get("activation", "")
        if act and act not in _ACTS:
            return False
        params = a.get("activation_params", []) if n.op == "FusedConv" else \
            [a[k] for k in ("activation_alpha", "activation_beta", "activation_gamma") if k in a]
        if act == "Clip" and len(params) != 2:
            return False
    if n.op in ("SkipLayerNormalization", "SkipSimplifiedLayerNormalization", "SimplifiedLayerNormalization") \
            and any(o is not None and (o.users or g.is_output(o)) for o in outs[1:3]):
        return False
    if n.op == "FusedMatMul" and (a.get("transBatchA", 0) or a.get("transBatchB", 0)
                                  or any(len(v.shape) < 2 for v in ins[:2])):
        return False
    if n.op == "MatMulNBits" and not (all(v is None or v.const is not None for v in ins[1:4])
                                       and arg(4) is None):
        return False
    emit = _Emit(g, n)
    g.remove_node(n)  # its slot (emit.index) now takes the new nodes
    if n.op == "Gelu":
        emit("Gelu", [ins[0]], {"approximate": "none"}, out=y, main=True)
    elif n.op in ("BiasGelu", "FastGelu"):
        x = emit("Add", [ins[0], arg(1)], like=y) if arg(1) is not None else ins[0]
        emit("Gelu", [x], {"approximate": "none" if n.op == "BiasGelu" else "tanh"}, out=y, main=True)
    elif n.op == "QuickGelu":
        alpha = g.const(_scalar(y, a.get("alpha", 1.702)), f"{n.name}/alpha")
        s = emit("Sigmoid", [emit("Mul", [ins[0], alpha], like=y)], like=y)
        emit("Mul", [ins[0], s], out=y, main=True)
    elif n.op == "MatMulNBits":
        w = dequantize_nbits(ins[1].const, ins[2].const, arg(3).const if arg(3) is not None else None, a["K"],
                             a["N"], a.get("bits", 4), a["block_size"])
        wt = g.const(w.t().contiguous().to(dtypes.to_torch(ins[0].dtype)), f"{n.name}/weight")
        h = emit("MatMul", [ins[0], wt], out=None if arg(5) is not None else y, like=y, main=True)
        if arg(5) is not None:
            emit("Add", [h, ins[5]], out=y)
    elif n.op == "FusedMatMul":
        ab = [_swap_last(emit, v, f"trans{k}") if a.get(f"trans{k}", 0) else v for v, k in zip(ins[:2], "AB")]
        alpha = a.get("alpha", 1.0)
        h = emit("MatMul", ab, out=None if alpha != 1.0 else y, like=y, main=True)
        if alpha != 1.0:
            emit("Mul", [h, g.const(_scalar(y, alpha), f"{n.name}/alpha")], out=y)
    elif n.op == "BiasAdd":
        emit("Add", [emit("Add", [ins[0], ins[1]], like=y), ins[2]], out=y, main=True)
    elif n.op == "SimplifiedLayerNormalization":
        ax = a.get("axis", -1) % len(y.shape) - len(y.shape)
        emit("fused.RMSNorm", [ins[0], ins[1]], {"axis": ax, "epsilon": a.get("epsilon", 1e-5)}, out=y, main=True)
    elif n.op in ("SkipLayerNormalization", "SkipSimplifiedLayerNormalization"):
        simple = n.op == "SkipSimplifiedLayerNormalization"
        bias = arg(3) if simple else arg(4)
        total = outs[3] if len(outs) > 3 and outs[3] is not None else None
        s = emit("Add", [ins[0], ins[1]], like=y, out=None if bias is not None else total)
        if bias is not None:
            s = emit("Add", [s, bias], out=total, like=y)
        eps = {"epsilon": a.get("epsilon", 1e-12)}
        if simple:
            emit("fused.RMSNorm", [s, ins[2]], {"axis": -1, **eps}, out=y, main=True)
        else:
            emit("LayerNormalization", [s, ins[2], arg(3)], {"axis": -1, **eps}, out=y, main=True)
    else:  # FusedConv / FusedGemm
        core = {k: v for k, v in a.items() if not k.startswith("activation")}
        op, main = ("Conv", ins[:3]) if n.op == "FusedConv" else ("Gemm", ins[:3])
        act = a.get("activation", "")
        z = arg(3) if n.op == "FusedConv" else None
        h = emit(op, list(main), core, out=None if (act or z is not None) else y, like=y, main=True)
        if z is not None:
            h = emit("Add", [h, z], out=None if act else y, like=y)
        if act:
            _activation(emit, g, act, params, h, y)
    log.info("Rewriting %s (%s::%s -> ONNX ops)", n.name, MS, n.op)
    return True


_REWRITTEN = {"Gelu", "BiasGelu", "FastGelu", "QuickGelu", "BiasAdd", "SkipLayerNormalization", "FusedConv",
              "FusedGemm", "MatMulNBits", "FusedMatMul", "SkipSimplifiedLayerNormalization"}


def contrib_to_onnx(g: Graph) -> Graph:
    """Rewrite contrib nodes that have a plain-ONNX form (see the module docstring)."""
    for n in [n for n in g.nodes if (n.domain == MS and n.op in _REWRITTEN)
              or (n.domain in ("", "ai.onnx") and n.op == "SimplifiedLayerNormalization")]:
        _rewrite(g, n)
    g.prune_values()
    return g
