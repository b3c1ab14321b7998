"""com.microsoft attention: Attention and QAttention (packed QKV projection), MultiHeadAttention,
RotaryEmbedding. Masked scores get mask_filter_value added (not -inf), as ORT does."""
from __future__ import annotations

import math

import torch

from ...errors import UnsupportedOpError
from ...ir.symbolic import norm
from ..common import in_info
from ..attention import rotary_ref
from ..registry import infer, reference
from . import MS


def _heads(t, n):
    """(B, S, N*h) -> (B, N, S, h)."""
    b, s, d = t.shape
    return t.reshape(b, s, n, d // n).transpose(1, 2)


def _key_mask(mask, b, s, t, past, fill):
    """Additive mask (B or 1, 1, S or 1, T) from an ORT mask_index / key_padding_mask, or None."""
    if mask is None:
        return None
    dev = mask.device
    j = torch.arange(t, device=dev)
    if mask.dim() == 1 and mask.shape[0] == b:      # end positions of the valid keys
        keep = j.reshape(1, -1) < mask.to(torch.int64).reshape(-1, 1)
    elif mask.dim() == 1 and mask.shape[0] == 2 * b:  # end and start positions
        end, start = mask[:b].to(torch.int64).reshape(-1, 1), mask[b:].to(torch.int64).reshape(-1, 1)
        keep = (j.reshape(1, -1) < end) & (j.reshape(1, -1) >= start)
    elif mask.dim() == 2:                             # raw (B, T) mask, 0 = masked
        keep = mask != 0
    elif mask.dim() == 3:                             # (B, S, T)
        return torch.where(mask != 0, 0.0, fill).to(torch.float32).unsqueeze(1)
    else:
        raise UnsupportedOpError(f"attention mask of shape {tuple(mask.shape)} is not supported")
    return torch.where(keep, 0.0, fill).to(torch.float32).reshape(keep.shape[0], 1, 1, t)


def attend(q, k, v, scale, add_mask, bias, causal, past_len):
    """softmax(q k^T * scale + bias + mask) v over (B, N, S, h) heads; returns (B, S, N*hv)."""
    s, t = q.shape[2], k.shape[2]
    sc = torch.matmul(q.float(), k.float().transpose(-1, -2)) * scale
    if bias is not None:
        sc = sc + bias.float()
    if add_mask is not None:
        sc = sc + add_mask
    if causal:
        i = torch.arange(s, device=q.device).reshape(-1, 1) + past_len
        sc = sc.masked_fill(torch.arange(t, device=q.device).reshape(1, -1) > i, float("-inf"))
    y = torch.matmul(torch.softmax(sc, -1), v.float()).to(q.dtype)
    b, n, _, hv = y.shape
    return y.transpose(1, 2).reshape(b, s, n * hv)


@reference("Attention", domain=MS)
def attention_ref(x, weights, bias=None, mask_index=None, past=None, attention_bias=None,
                  past_sequence_length=None, num_heads=1, qkv_hidden_sizes=None, scale=0.0,
                  unidirectional=0, mask_filter_value=-10000.0, do_rotary=0, past_present_share_buffer=0,
                  rotary_embedding_dim=0, _n_outputs=1):
    """Self-attention with the Q, K, V projections packed in one weight (in, q + k + v)."""
    if do_rotary:
        raise UnsupportedOpError("Attention: do_rotary=1 is not supported")
    qkv = torch.matmul(x, weights)
    if bias is not None:
        qkv = qkv + bias
    return _packed(qkv, weights.shape[1], qkv_hidden_sizes, num_heads, mask_index, past, attention_bias, scale,
                   unidirectional, mask_filter_value, _n_outputs)


def _packed(qkv, width, qkv_hidden_sizes, num_heads, mask_index, past, attention_bias, scale, unidirectional,
            mask_filter_value, n_outputs):
    """Attention over a packed (B, S, q + k + v) projection; (y[, present])."""
    hq = width // 3
    sizes = list(qkv_hidden_sizes) if qkv_hidden_sizes else [hq, hq, width - 2 * hq]
    q, k, v = (_heads(t, num_heads) for t in qkv.split(sizes, -1))
    plen = 0
    if past is not None:
        plen = past.shape[3]
        k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)
    b, s, t = qkv.shape[0], qkv.shape[1], k.shape[2]
    sc = scale or 1.0 / math.sqrt(q.shape[-1])
    y = attend(q, k, v, sc, _key_mask(mask_index, b, s, t, plen, mask_filter_value), attention_bias,
               unidirectional, plen)
    return (y, torch.stack([k, v])) if n_outputs > 1 else y


@reference("QAttention", domain=MS)
def qattention_ref(x, weights, bias, input_scale, weight_scale, mask_index=None, input_zero_point=None,
                   weight_zero_point=None, past=None, num_heads=1, unidirectional=0, do_rotary=0,
                   past_present_share_buffer=0, mask_filter_value=-10000.0, scale=0.0, _n_outputs=1):
    """Attention whose packed projection is an integer GEMM: (x - x_zp)(W - w_zp)·x_scale·w_scale + bias."""
    if do_rotary:
        raise UnsupportedOpError("QAttention: do_rotary=1 is not supported")
    xi = x.to(torch.float64) - (input_zero_point.to(torch.float64) if input_zero_point is not None else 0)
    wi = weights.to(torch.float64) - (weight_zero_point.to(torch.float64) if weight_zero_point is not None else 0)
    exact = torch.int64 if x.device.type == "cpu" else torch.float64
    acc = torch.matmul(xi.to(exact), wi.to(exact)).to(torch.float32)
    qkv = acc * (input_scale.to(torch.float32) * weight_scale.to(torch.float32)) + bias
    return _packed(qkv, weights.shape[1], None, num_heads, mask_index, past, None, scale, unidirectional,
                   mask_filter_value, _n_outputs)


@infer("Attention", "QAttention", domain=MS)
def attention_infer(node):
    (dt, xs), (_, ws) = in_info(node, 0), in_info(node, 1)
    dt = node.inputs[2].dtype if node.op == "QAttention" else dt
    sizes = node.attrs.get("qkv_hidden_sizes")
    n = node.attrs.get("num_heads", 1)
    hq = sizes[0] if sizes else norm(ws[1] // 3)
    hv = sizes[2] if sizes else hq
    outs = [(dt, (xs[0], xs[1], hv))]
    if len(node.outputs) > 1:
        past = in_info(node, 8 if node.op == "QAttention" else 4)[1]
        t = norm(xs[1] + past[3]) if past is not None else xs[1]
        outs.append((dt, (2, xs[0], n, t, norm(hq // n))))
    return outs


@reference("MultiHeadAttention", domain=MS)
def mha_ref(query, key=None, value=None, bias=None, key_padding_mask=None, attention_bias=None,
            past_key=None, past_value=None, past_sequence_length=None, cache_indirection=None,
            num_heads=1, scale=0.0, unidirectional=0, mask_filter_value=-10000.0):
    """Attention of projected (B, S, D) query over (B, L, D) key / value (+ bias (D + D + Dv))."""
    if key is None or value is None or key.dim() != 3 or value.dim() != 3:
        raise UnsupportedOpError("MultiHeadAttention: only separate 3-D query, key and value are supported")
    if bias is not None:
        d, dk = query.shape[-1], key.shape[-1]
        query, key, value = query + bias[:d], key + bias[d:d + dk], value + bias[d + dk:]
    q, k, v = _heads(query, num_heads), _heads(key, num_heads), _heads(value, num_heads)
    plen = 0
    if past_key is not None:
        plen = past_key.shape[2]
        k, v = torch.cat([past_key, k], 2), torch.cat([past_value, v], 2)
    b, s, t = query.shape[0], query.shape[1], k.shape[2]
    sc = scale or 1.0 / math.sqrt(q.shape[-1])
    y = attend(q, k, v, sc, _key_mask(key_padding_mask, b, s, t, plen, mask_filter_value), attention_bias,
               unidirectional, plen)
    return y, k, v


@infer("MultiHeadAttention", domain=MS)
def mha_infer(node):
    (dt, qs), (_, ks), (_, vs) = in_info(node, 0), in_info(node, 1), in_info(node, 2)
    n = node.attrs.get("num_heads", 1)
    pk = in_info(node, 6)[1]
    t = norm(ks[1] + pk[2]) if pk is not None else ks[1]
    outs = [(dt, (qs[0], qs[1], vs[2])), (dt, (qs[0], n, t, norm(ks[2] // n))),
            (dt, (qs[0], n, t, norm(vs[2] // n)))]
    return outs[:len(node.outputs)]


@reference("RotaryEmbedding", domain=MS)
def ms_rotary_ref(x, position_ids, cos_cache, sin_cache, interleaved=0, num_heads=0, rotary_embedding_dim=0,
                  scale=1.0, is_packed_batching=0):
    """ONNX's RotaryEmbedding with ORT's input order; a one-element position_ids is the first position."""
    if position_ids.numel() == 1:
        s = x.shape[2] if x.dim() == 4 else x.shape[1]
        position_ids = position_ids.reshape(1, 1) + torch.arange(s, device=x.device).reshape(1, -1)
        position_ids = position_ids.expand(x.shape[0], -1)
    if x.dim() == 3 and not num_heads:  # head size from the cache: (positions, rotary dim / 2)
        num_heads = x.shape[2] // (rotary_embedding_dim or 2 * cos_cache.shape[1])
    return rotary_ref(x, cos_cache, sin_cache, position_ids.to(torch.int64), interleaved, num_heads,
                      rotary_embedding_dim)


infer("RotaryEmbedding", domain=MS)(lambda node: [in_info(node, 0)])
