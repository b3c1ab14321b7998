"""com.microsoft normalizations: SkipLayerNormalization, EmbedLayerNormalization, SkipSimplifiedLayerNormalization,
and ORT's SimplifiedLayerNormalization (RMS norm; ORT registers it in the ONNX domain)."""
from __future__ import annotations

import torch

from ..common import in_info
from ..registry import infer, reference
from . import MS


def _layernorm(s, gamma, beta, eps):
    """Normalize over the last axis; (y, mean, inv_std) with the statistics in float32."""
    sf = s.float()
    mean = sf.mean(-1, keepdim=True)
    inv = torch.rsqrt(((sf - mean) ** 2).mean(-1, keepdim=True) + eps)
    y = ((sf - mean) * inv * gamma.float())
    if beta is not None:
        y = y + beta.float()
    return y.to(s.dtype), mean, inv


@reference("SkipLayerNormalization", domain=MS)
def skip_layernorm_ref(x, skip, gamma, beta=None, bias=None, epsilon=1e-12):
    """LayerNorm(x + skip + bias) * gamma + beta; also the statistics and the pre-norm sum."""
    s = x + skip
    if bias is not None:
        s = s + bias
    y, mean, inv = _layernorm(s, gamma, beta, epsilon)
    return y, mean, inv, s


@infer("SkipLayerNormalization", domain=MS)
def skip_layernorm_infer(node):
    dt, xs = in_info(node, 0)
    stat = tuple(xs[:-1]) + (1,)
    outs = [(dt, xs), ("float32", stat), ("float32", stat), (dt, xs)]
    return outs[:len(node.outputs)]


@reference("EmbedLayerNormalization", domain=MS)
def embed_layernorm_ref(input_ids, segment_ids, word_embedding, position_embedding,
                        segment_embedding=None, gamma=None, beta=None, mask=None, position_ids=None,
                        epsilon=1e-12, mask_index_type=1):
    """word[ids] + position[pos] (+ segment[seg]) -> LayerNorm; mask_index = tokens per row of mask."""
    b, s = input_ids.shape
    ids = input_ids.to(torch.int64)
    if position_ids is None:
        pos = torch.arange(s, device=ids.device).expand(b, s)
    else:
        pos = position_ids.to(torch.int64).expand(b, s)
    e = word_embedding[ids] + position_embedding[pos]
    if segment_ids is not None and segment_embedding is not None:
        e = e + segment_embedding[segment_ids.to(torch.int64)]
    y, _, _ = _layernorm(e, gamma, beta, epsilon)
    if mask is not None:
        mask_index = mask.to(torch.int32).sum(1, dtype=torch.int32)
    else:
        mask_index = torch.zeros(b, dtype=torch.int32, device=ids.device)
    return y, mask_index, e


@infer("EmbedLayerNormalization", domain=MS)
def embed_layernorm_infer(node):
    (_, ids), (dt, we) = in_info(node, 0), in_info(node, 2)
    b, s, h = ids[0], ids[1], we[-1]
    outs = [(dt, (b, s, h)), ("int32", (b,)), (dt, (b, s, h))]
    return outs[:len(node.outputs)]




def _rms(s, gamma, eps):
    """x / sqrt(mean(x²) + eps) * gamma over the last axis; (y, inv_std) with inv_std in float32."""
    sf = s.float()
    inv = torch.rsqrt((sf * sf).mean(-1, keepdim=True) + eps)
    return (sf * inv * gamma.float()).to(s.dtype), inv


@reference("SimplifiedLayerNormalization")
def simplified_layernorm_ref(x, scale, axis=-1, epsilon=1e-5, stash_type=1):
    if axis not in (-1, x.dim() - 1):
        dims = tuple(range(axis % x.dim(), x.dim()))
        xf = x.float()
        inv = torch.rsqrt((xf * xf).mean(dims, keepdim=True) + epsilon)
        return (xf * inv).to(x.dtype) * scale, inv
    return _rms(x, scale, epsilon)


@infer("SimplifiedLayerNormalization")
def simplified_layernorm_infer(node):
    dt, xs = in_info(node, 0)
    ax = node.attrs.get("axis", -1) % len(xs)
    return [(dt, xs), ("float32", tuple(xs[:ax]) + (1,) * (len(xs) - ax))][:len(node.outputs)]


@reference("SkipSimplifiedLayerNormalization", domain=MS)
def skip_simplified_layernorm_ref(x, skip, gamma, bias=None, epsilon=1e-12):
    """RMSNorm(x + skip + bias) * gamma; also (an unused mean output,) inv_std_var and the sum."""
    s = x + skip
    if bias is not None:
        s = s + bias
    y, inv = _rms(s, gamma, epsilon)
    return y, torch.zeros_like(inv), inv, s


infer("SkipSimplifiedLayerNormalization", domain=MS)(skip_layernorm_infer)
