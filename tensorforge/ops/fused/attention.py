"""fused.Attention: softmax(Q·Kᵀ·scale + mask)·V on scaled_dot_product_attention (flash / memory-
efficient kernels on CUDA).

Inputs: q_src, k_src, v_src[, mask]. Each source reaches its [..., L, D] operand through a view
program (`q_view`, ...): a list of steps ["reshape", dims] (ONNX Reshape dims, 0 = copy),
["transpose", perm], ["select", axis, index] or ["narrow", axis, start, length]; `k_transposed` says the K operand is [..., D, S].
`out_view` maps the [..., L, Dv] result to the layer's output (e.g. heads merged back); `out_q`
[scale, zero point, type] quantizes it (the next layer's input Q, absorbed by passes/quant/finish)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ... import dtypes
from ..quant import quantize
from ..registry import infer, reference
from ..shape import reshape_dims


def apply_view(t, steps):
    """Run a view program on a tensor."""
    for st in steps or ():
        if st[0] == "reshape":
            t = t.reshape(reshape_dims(tuple(t.shape), list(st[1]), 0))
        elif st[0] == "transpose":
            t = t.permute(*st[1])
        elif st[0] == "select":
            t = t.select(st[1], st[2])
        elif st[0] == "narrow":
            t = t.narrow(st[1], st[2], st[3])
        else:
            raise ValueError(f"bad view step {st!r}")
    return t


def view_shape(shape, steps):
    """The shape a view program produces (symbolic dims allowed)."""
    shape = tuple(shape)
    for st in steps or ():
        if st[0] == "reshape":
            shape = tuple(reshape_dims(shape, list(st[1]), 0))
        elif st[0] == "transpose":
            shape = tuple(shape[p] for p in st[1])
        elif st[0] == "narrow":
            shape = shape[:st[1]] + (st[3],) + shape[st[1] + 1:]
        else:
            ax = st[1] % len(shape)
            shape = shape[:ax] + shape[ax + 1:]
    return shape


@reference("fused.Attention")
def attention_ref(q, k, v, mask=None, q_view=None, k_view=None, v_view=None, out_view=None,
                  k_transposed=0, scale=None, out_q=None):
    q, k, v = apply_view(q, q_view), apply_view(k, k_view), apply_view(v, v_view)
    if k_transposed:
        k = k.transpose(-1, -2)
    if mask is not None and mask.dtype != torch.bool and mask.dtype != q.dtype:
        mask = mask.to(q.dtype)
    if mask is not None and mask.dim() < 2:  # a scalar / per-key bias: SDPA wants [..., L, S]
        mask = mask.reshape((1,) * (2 - mask.dim()) + tuple(mask.shape))
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    return quantize_out(apply_view(y, out_view).contiguous(), out_q)


def quantize_out(y, out_q):
    """y, or QuantizeLinear(y) with the layer's out_q = [scale, zero point, type]."""
    if not out_q:
        return y
    s, z, dt = out_q
    return quantize(y, torch.tensor(s), torch.tensor(z), dtypes.to_torch(dt))


@infer("fused.Attention")
def attention_infer(node):
    a = node.attrs
    q = view_shape(node.inputs[0].shape, a.get("q_view"))
    v = view_shape(node.inputs[2].shape, a.get("v_view"))
    out = tuple(q[:-1]) + (v[-1],)
    return [(a["out_q"][2] if a.get("out_q") else node.inputs[0].dtype, view_shape(out, a.get("out_view")))]
