"""Fused layers built by the optimizer: pointwise DAGs, and Conv/Gemm/MatMul with an epilogue.

The epilogue of an anchor layer is a pointwise expression (see fused.expr) whose input 0 is the
anchor's result and whose inputs 1.. are the layer's extra inputs (residuals, per-channel
scales); it covers bias + activation chains and residual Add (+ activation).
"""
from __future__ import annotations

from types import SimpleNamespace

from ...ir.symbolic import broadcast, norm
from ..conv import conv_infer, conv_ref, conv_transpose_infer, conv_transpose_ref
from ..matmul import gemm_infer, gemm_ref, matmul_infer
from ..nearest import upsample_nearest
from ..registry import infer, reference
from .expr import eval_expr, expr_dtype

CONV_ATTRS = ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides", "output_padding",
              "output_shape")


def apply_epilogue(y, epilogue, extra, opset=17):
    """y, or the epilogue expression evaluated on y and the extra inputs."""
    return y if not epilogue else eval_expr(epilogue, [y, *extra], opset)


def epilogue_info(dtype, shape, epilogue, extra):
    """(dtype, shape) after an epilogue whose inputs are the anchor result and `extra` Values."""
    if not epilogue:
        return dtype, shape
    return (expr_dtype(epilogue, [dtype] + [v.dtype for v in extra]),
            broadcast(shape, *[v.shape for v in extra]))


def upsampled_shape(shape, factors):
    """The shape an input of fused.Pointwise has after its nearest upsample (factors or None)."""
    return tuple(shape) if not factors else tuple(norm(f * d) for d, f in zip(shape, factors))


@reference("fused.Pointwise")
def pointwise_ref(*inputs, expr, upsample=None, _opset=17):
    """expr over the inputs; input i is first nearest-upsampled by upsample[i] (per-axis integer
    factors: in[y // f]) where given."""
    if upsample:
        inputs = [x if not f else upsample_nearest(x, f) for x, f in zip(inputs, upsample)]
    return eval_expr(expr, inputs, _opset)


@infer("fused.Pointwise")
def pointwise_infer(node):
    ins = node.inputs
    ups = node.attrs.get("upsample") or [None] * len(ins)
    return [(expr_dtype(node.attrs["expr"], [v.dtype for v in ins]),
             broadcast(*[upsampled_shape(v.shape, f) for v, f in zip(ins, ups)]))]


@reference("fused.ConvAct")
def conv_act_ref(x, w, b=None, *extra, transpose=0, epilogue=None, _opset=17, **conv):
    y = (conv_transpose_ref if transpose else conv_ref)(x, w, b, **conv)
    return apply_epilogue(y, epilogue, extra, _opset)


@infer("fused.ConvAct")
def conv_act_infer(node):
    conv = {k: a for k, a in node.attrs.items() if k in CONV_ATTRS}
    fake = SimpleNamespace(inputs=node.inputs[:2], attrs=conv, name=node.name, outputs=node.outputs)
    dt, shp = (conv_transpose_infer if node.attrs.get("transpose") else conv_infer)(fake)[0]
    return [epilogue_info(dt, shp, node.attrs.get("epilogue"), node.inputs[3:])]


@reference("fused.GemmAct")
def gemm_act_ref(a, b, c=None, *extra, alpha=1.0, beta=1.0, transA=0, transB=0, epilogue=None,
                 _opset=17):
    y = gemm_ref(a, b, c, alpha=alpha, beta=beta, transA=transA, transB=transB)
    return apply_epilogue(y, epilogue, extra, _opset)


@infer("fused.GemmAct")
def gemm_act_infer(node):
    dt, shp = gemm_infer(node)[0]
    if len(node.inputs) > 2 and node.inputs[2] is not None:
        shp = broadcast(shp, node.inputs[2].shape)
    return [epilogue_info(dt, shp, node.attrs.get("epilogue"), node.inputs[3:])]


@reference("fused.MatMulAct")
def matmul_act_ref(a, b, bias=None, *extra, alpha=1.0, epilogue=None, _opset=17):
    """alpha * (a @ b) + bias, then the epilogue; bias is 1-D over the output's last dim."""
    import torch
    if bias is not None and b.dim() == 2 and a.dim() >= 2 and bias.dim() == 1:
        y = torch.addmm(bias, a.reshape(-1, a.shape[-1]), b, alpha=alpha).reshape(*a.shape[:-1], b.shape[-1])
    else:
        y = torch.matmul(a, b)
        if alpha != 1.0:
            y = y * alpha
        if bias is not None:
            y = y + bias
    return apply_epilogue(y, epilogue, extra, _opset)


@infer("fused.MatMulAct")
def matmul_act_infer(node):
    dt, shp = matmul_infer(node)[0]
    if len(node.inputs) > 2 and node.inputs[2] is not None:
        shp = broadcast(shp, node.inputs[2].shape)
    return [epilogue_info(dt, shp, node.attrs.get("epilogue"), node.inputs[3:])]
