"""Attention ops: Attention, RotaryEmbedding, LinearAttention, FlexAttention."""
from __future__ import annotations

import math

import torch

from ..errors import ShapeError
from ..ir.symbolic import norm
from .common import has_input, in_info
from .registry import infer, reference

_NEG_INF = float("-inf")


def _split_heads(x, heads):
    """(B, S, H*D) -> (B, H, S, D)."""
    b, s, hid = x.shape
    return x.reshape(b, s, heads, hid // heads).transpose(1, 2)


def _window_allowed(q_len, kv_len, offset, left, right, causal, device):
    """Boolean (q, kv) or (B, 1, q, kv) mask of attendable keys for causal/sliding-window rules."""
    i = torch.arange(q_len, device=device).reshape(q_len, 1)
    j = torch.arange(kv_len, device=device).reshape(1, kv_len)
    if isinstance(offset, torch.Tensor):
        diff = (i + offset.reshape(-1, 1, 1, 1).to(device)) - j
    else:
        diff = (i + offset) - j
    ok = torch.ones_like(diff, dtype=torch.bool)
    if causal:
        ok &= diff >= 0
    if left is not None and left >= 0:
        ok &= diff <= left
    if right is not None and right >= 0:
        ok &= -diff <= right
    return ok


def _bias(q, kv_len, attn_mask, past_len, nonpad, is_causal, left, right, ct):
    """The additive attention bias (broadcastable to B, H, q, kv) in compute type ct."""
    q_len, dev = q.shape[2], q.device
    bias = torch.zeros((q_len, kv_len), dtype=ct, device=dev)
    if attn_mask is not None:
        pad = kv_len - attn_mask.shape[-1]
        if attn_mask.dtype == torch.bool:
            if pad > 0:
                attn_mask = torch.nn.functional.pad(attn_mask, (0, pad), value=False)
            attn_mask = torch.where(attn_mask, torch.zeros((), dtype=ct, device=dev),
                                    torch.full((), _NEG_INF, dtype=ct, device=dev))
        else:
            attn_mask = attn_mask.to(ct)
            if pad > 0:
                attn_mask = torch.nn.functional.pad(attn_mask, (0, pad), value=_NEG_INF)
        bias = bias + attn_mask
    offset = (nonpad.to(torch.int64) - q_len) if nonpad is not None and past_len == 0 else past_len
    zero, ninf = torch.zeros((), dtype=ct, device=dev), torch.full((), _NEG_INF, dtype=ct, device=dev)
    if is_causal:
        bias = bias + torch.where(_window_allowed(q_len, kv_len, offset, None, None, True, dev), zero, ninf)
    if (left is not None and left >= 0) or (right is not None and right >= 0):
        bias = bias + torch.where(_window_allowed(q_len, kv_len, offset, left, right, False, dev), zero, ninf)
    if nonpad is not None:
        keep = torch.arange(kv_len, device=dev).reshape(1, -1) < nonpad.to(dev).reshape(-1, 1)
        bias = bias + torch.where(keep, 0.0, _NEG_INF).to(ct).reshape(-1, 1, 1, kv_len)
    return bias


def _softmax(x):
    """Softmax over the last axis; all -inf rows give zeros (not NaN)."""
    m = x.amax(-1, keepdim=True)
    m = torch.where(torch.isneginf(m), torch.zeros_like(m), m)
    e = torch.exp(x - m)
    s = e.sum(-1, keepdim=True)
    return e / torch.where(s == 0, torch.ones_like(s), s)


@reference("Attention")
def attention_ref(q, k, v, attn_mask=None, past_key=None, past_value=None, nonpad_kv_seqlen=None,
                  is_causal=0, kv_num_heads=None, q_num_heads=None, qk_matmul_output_mode=0,
                  scale=None, softcap=0.0, softmax_precision=None, left_window_size=-1,
                  right_window_size=-1):
    dt = q.dtype
    ct = torch.float64 if dt == torch.float64 or softmax_precision == 11 else \
        dt if dt == torch.float16 and softmax_precision is None else torch.float32
    rank3 = q.dim() == 3
    if rank3:
        q, k, v = _split_heads(q, q_num_heads), _split_heads(k, kv_num_heads), _split_heads(v, kv_num_heads)
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[3])
    s = torch.full((), math.sqrt(scale), dtype=dt, device=q.device)  # q and k are scaled by sqrt(scale)
    present_k = torch.cat([past_key, k], 2) if past_key is not None else k
    present_v = torch.cat([past_value, v], 2) if past_value is not None else v
    past_len = past_key.shape[2] if past_key is not None else 0
    bias = _bias(q, present_k.shape[2], attn_mask, past_len, nonpad_kv_seqlen, is_causal,
                 left_window_size, right_window_size, ct)
    kk, vv = present_k, present_v
    hq, hk = q.shape[1], kk.shape[1]
    if hq != hk and hq % hk == 0:
        kk, vv = kk.repeat_interleave(hq // hk, 1), vv.repeat_interleave(hq // hk, 1)
    qk = torch.matmul((q * s).to(ct), (kk * s).to(ct).transpose(-1, -2))
    qk = qk.to(dt).to(ct)  # the reference's matmul result is in the input type
    if softcap and softcap > 0:
        qk = torch.tanh(qk / softcap) * softcap
    with_bias = qk + bias
    probs = _softmax(with_bias)
    masked_row = torch.isneginf(bias.amax(-1, keepdim=True))
    probs = torch.where(masked_row, torch.zeros_like(probs), probs)
    qk_out = {2: with_bias, 3: probs}.get(qk_matmul_output_mode, qk)
    y = torch.matmul(probs.to(dt).to(ct), vv.to(ct)).to(dt)
    if rank3:
        y = y.transpose(1, 2).reshape(y.shape[0], y.shape[2], -1)
    qk_out = torch.broadcast_to(qk_out, qk.shape)
    return y, present_k, present_v, qk_out.to(dt).contiguous()


def _div(d, h):
    return d // h if isinstance(d, int) else norm(d / h)


@infer("Attention")
def attention_infer(node):
    (qt, qs), (_, ks), (_, vs) = in_info(node, 0), in_info(node, 1), in_info(node, 2)
    a = node.attrs
    if len(qs) not in (3, 4) or len(ks) != len(qs) or len(vs) != len(qs):
        raise ShapeError(f"Attention '{node.name}': q/k/v must all be 3D or 4D")
    past = node.inputs[4].shape[2] if has_input(node, 4) else 0
    if len(qs) == 3:
        hq, hkv = a.get("q_num_heads"), a.get("kv_num_heads")
        if not hq or not hkv:
            raise ShapeError(f"Attention '{node.name}': 3D inputs need q_num_heads and kv_num_heads")
        b, sq, skv = qs[0], qs[1], ks[1]
        dk, dv = _div(ks[2], hkv), _div(vs[2], hkv)
        y = (b, sq, norm(hq * dv))
    else:
        b, hq, sq, hkv, skv, dk, dv = qs[0], qs[1], qs[2], ks[1], ks[2], ks[3], vs[3]
        y = (b, hq, sq, dv)
    total = norm(past + skv)
    outs = [(qt, y), (qt, (b, hkv, total, dk)), (qt, (b, hkv, total, dv)), (qt, (b, hq, sq, total))]
    return outs[:max(1, len(node.outputs))]


@reference("RotaryEmbedding")
def rotary_ref(x, cos_cache, sin_cache, position_ids=None, interleaved=0, num_heads=0,
               rotary_embedding_dim=0):
    shape4 = x.dim() == 4
    t = x.transpose(1, 2) if shape4 else x.reshape(x.shape[0], x.shape[1], num_heads, -1)
    d = rotary_embedding_dim or t.shape[3]
    rot, rest = t[..., :d], t[..., d:]
    if position_ids is not None:
        cos_cache, sin_cache = cos_cache[position_ids], sin_cache[position_ids]
    cos, sin = cos_cache.unsqueeze(2), sin_cache.unsqueeze(2)
    x1, x2 = (rot[..., 0::2], rot[..., 1::2]) if interleaved else rot.chunk(2, -1)
    real, imag = cos * x1 - sin * x2, sin * x1 + cos * x2
    rot = torch.stack([real, imag], -1).reshape(rot.shape) if interleaved else torch.cat([real, imag], -1)
    out = torch.cat([rot, rest], -1).to(x.dtype)
    return out.transpose(1, 2) if shape4 else out.reshape(x.shape)


@infer("RotaryEmbedding")
def rotary_infer(node):
    return [in_info(node, 0)]


@reference("LinearAttention")
def linear_attention_ref(q, k, v, past_state=None, decay=None, beta=None, chunk_size=None,
                         kv_num_heads=1, q_num_heads=1, scale=None, update_rule="gated_delta"):
    """Per step: S = S*exp(g); v' = beta*(v - S^T k) (delta rules); S += k v'^T; o = scale * q S."""
    b, t, _ = q.shape
    f = torch.float32 if q.dtype != torch.float64 else torch.float64
    qh, kh, vh = (_split_heads(x, h).to(f) for x, h in ((q, q_num_heads), (k, kv_num_heads), (v, kv_num_heads)))
    dk, dv, group = qh.shape[3], vh.shape[3], q_num_heads // kv_num_heads
    if decay is not None:
        g = decay.reshape(b, t, kv_num_heads, -1).transpose(1, 2).to(f)  # (B, H, T, 1 or dk)
    if beta is not None:
        bt = beta.reshape(b, t, beta.shape[-1], 1).transpose(1, 2).to(f)
    state = past_state.to(f) if past_state is not None else qh.new_zeros((b, kv_num_heads, dk, dv))
    sc = 1.0 / math.sqrt(dk) if not scale else float(scale)
    outs = []
    for i in range(t):
        kt, vt = kh[:, :, i], vh[:, :, i]
        if decay is not None:
            state = state * torch.exp(g[:, :, i])[..., None]
        if beta is not None:
            vt = bt[:, :, i] * (vt - torch.einsum("bhdm,bhd->bhm", state, kt))
        state = state + kt[..., :, None] * vt[..., None, :]
        read = state.repeat_interleave(group, 1) if group > 1 else state
        outs.append(sc * torch.einsum("bhd,bhdm->bhm", qh[:, :, i], read))
    y = torch.stack(outs, 2).transpose(1, 2).reshape(b, t, q_num_heads * dv).to(q.dtype)
    return y, state.to(past_state.dtype if past_state is not None else q.dtype)


@infer("LinearAttention")
def linear_attention_infer(node):
    (qt, qs), (_, vs) = in_info(node, 0), in_info(node, 2)
    a = node.attrs
    hq, hkv = a.get("q_num_heads", 1), a.get("kv_num_heads", 1)
    dk, dv = _div(qs[2], hq), _div(vs[2], hkv)
    st = node.inputs[3].dtype if has_input(node, 3) else qt
    return [(qt, (qs[0], qs[1], norm(hq * dv))), (st, (qs[0], hkv, dk, dv))]


@reference("FlexAttention", domain="ai.onnx.preview")
def flex_attention_ref(q, k, v, scale=None, softmax_precision=None):
    """softmax((q*sqrt(s)) (k*sqrt(s))^T) v with GQA head repetition; softmax in fp32 for fp16."""
    s = math.sqrt(scale if scale is not None else 1.0 / math.sqrt(q.shape[3]))
    ct = torch.float64 if q.dtype == torch.float64 or softmax_precision == 11 else torch.float32
    hq, hk = q.shape[1], k.shape[1]
    if hq != hk:
        k, v = k.repeat_interleave(hq // hk, 1), v.repeat_interleave(hq // hk, 1)
    sc = torch.full((), s, dtype=torch.float32, device=q.device).to(q.dtype)  # no host copy
    scores = torch.matmul(q * sc, (k * sc).transpose(-1, -2)).to(ct)
    return torch.matmul(torch.softmax(scores, -1), v.to(ct)).to(v.dtype)


@infer("FlexAttention", domain="ai.onnx.preview")
def flex_attention_infer(node):
    (qt, qs), (_, vs) = in_info(node, 0), in_info(node, 2)
    return [(node.inputs[2].dtype, (qs[0], qs[1], qs[2], vs[3]))]
