"""DeformConv, TfIdfVectorizer, Scatter (opset 9-10 alias of ScatterElements), the preview training
optimizers (Adagrad, Adam, Momentum) and the simple ai.onnx.ml ops (Binarizer,
ArrayFeatureExtractor)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..ir.symbolic import norm
from .common import in_info, infer_same
from .registry import infer, reference
from .scatter_gather import scatter_elements_ref, scatter_infer

TRAINING = "ai.onnx.preview.training"
ML = "ai.onnx.ml"

reference("Scatter")(scatter_elements_ref)
infer("Scatter")(scatter_infer)


# ---- DeformConv (2-D) ---------------------------------------------------------------------------------
@reference("DeformConv")
def deform_conv_ref(x, w, offset, b=None, mask=None, dilations=None, group=1, kernel_shape=None,
                    offset_group=1, pads=None, strides=None):
    """Bilinear samples at kernel taps moved by the offsets (zeros outside), times mask, then a
    grouped matmul with the weights."""
    n, c, ih, iw = x.shape
    kh, kw = kernel_shape or list(w.shape[2:])
    dh, dw = dilations or [1, 1]
    sh, sw = strides or [1, 1]
    pads = pads or [0, 0, 0, 0]
    og, (oh, ow) = offset_group, offset.shape[2:]
    off = offset.reshape(n, og, kh, kw, 2, oh, ow).to(torch.float32)
    dev = x.device
    ys = (torch.arange(kh, device=dev) * dh).reshape(kh, 1, 1, 1) + \
        (torch.arange(oh, device=dev) * sh - pads[0]).reshape(1, 1, oh, 1)
    xs = (torch.arange(kw, device=dev) * dw).reshape(1, kw, 1, 1) + \
        (torch.arange(ow, device=dev) * sw - pads[1]).reshape(1, 1, 1, ow)
    y = ys + off[:, :, :, :, 0]
    xx = xs + off[:, :, :, :, 1]
    grid = torch.stack([xx / max(iw - 1, 1) * 2 - 1, y / max(ih - 1, 1) * 2 - 1], -1)
    grid = grid.reshape(n * og, kh * kw * oh, ow, 2)
    src = x.reshape(n * og, c // og, ih, iw).to(torch.float32)
    s = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    s = s.reshape(n, og, c // og, kh, kw, oh, ow)
    if mask is not None:
        s = s * mask.reshape(n, og, 1, kh, kw, oh, ow).to(s.dtype)
    cols = s.reshape(n, group, (c // group) * kh * kw, oh * ow)
    wg = w.reshape(group, w.shape[0] // group, -1).to(s.dtype)
    out = torch.einsum("gok,ngkl->ngol", wg, cols).reshape(n, w.shape[0], oh, ow)
    if b is not None:
        out = out + b.reshape(1, -1, 1, 1).to(out.dtype)
    return out.to(x.dtype)


@infer("DeformConv")
def deform_conv_infer(node):
    (dt, xs), (_, ws), (_, os_) = in_info(node, 0), in_info(node, 1), in_info(node, 2)
    return [(dt, (xs[0], ws[0]) + tuple(os_[2:]))]


# ---- TfIdfVectorizer (integer pools) ------------------------------------------------------------------
def _ngram_trie(pool, counts, lo, hi):
    """{n-gram tuple: id (1-based; 0 for prefixes only)} for the pool's n-grams of length lo..hi."""
    trie, gid = {}, 1
    for size, start in enumerate(counts, 1):
        end = counts[size] if size < len(counts) else len(pool)
        n = (end - start) // size if end > start else 0
        for j in range(n):
            if lo <= size <= hi:
                g = tuple(pool[start + j * size: start + (j + 1) * size])
                for p in range(1, size):
                    trie.setdefault(g[:p], 0)
                trie[g] = gid
            gid += 1
    return trie


@reference("TfIdfVectorizer")
def tfidf_ref(x, max_gram_length, max_skip_count, min_gram_length, mode, ngram_counts, ngram_indexes,
              pool_int64s=None, pool_strings=None, weights=None):
    """N-gram counts (with skips) over each row, weighted TF / IDF / TFIDF (read on the host)."""
    trie = _ngram_trie(list(pool_int64s or []), list(ngram_counts), min_gram_length, max_gram_length)
    rows = x.reshape(1, -1).tolist() if x.dim() == 1 else x.tolist()
    size = max(ngram_indexes) + 1
    freq = torch.zeros((len(rows), size), dtype=torch.float32)
    for r, row in enumerate(rows):
        first = min_gram_length
        for skip in range(1, max_skip_count + 2):
            for s in range(len(row)):
                if s + skip * (first - 1) >= len(row):
                    break
                key, item, n = (), s, 1
                while n <= max_gram_length and item < len(row):
                    key = key + (row[item],)
                    if key not in trie:
                        break
                    if n >= first and trie[key]:
                        freq[r, ngram_indexes[trie[key] - 1]] += 1
                    n, item = n + 1, item + skip
            if first == 1:
                first += 1
                if first > max_gram_length:
                    break
    w = torch.tensor(weights, dtype=torch.float32) if weights else None
    if mode == "IDF":
        freq = torch.where(freq > 0, w if w is not None else torch.ones(size), torch.zeros(size))
    elif mode == "TFIDF" and w is not None:
        freq = freq * w
    return (freq[0] if x.dim() == 1 else freq).to(x.device)


@infer("TfIdfVectorizer")
def tfidf_infer(node):
    x = node.inputs[0]
    size = max(node.attrs["ngram_indexes"]) + 1
    return [("float32", (size,) if len(x.shape) == 1 else (x.shape[0], size))]


# ---- training optimizers (ai.onnx.preview.training) ------------------------------------------------
def _groups(data, k):
    """(R, T, X1..Xn, G1..Gn, ...) -> R, T and per-tensor tuples of the k trailing groups."""
    r, t, rest = data[0], data[1], data[2:]
    n = len(rest) // k
    return r, t, [tuple(rest[j * n + i] for j in range(k)) for i in range(n)]


@reference("Adagrad", domain=TRAINING)
def adagrad_ref(*data, decay_factor=0.0, epsilon=0.0, norm_coefficient=0.0):
    r, t, items = _groups(data, 3)
    rate = r / (1 + t * decay_factor)
    xs, hs = [], []
    for x, g, h in items:
        gr = norm_coefficient * x + g
        h2 = h + gr * gr
        xs.append((x - rate * gr / (torch.sqrt(h2) + epsilon)).to(x.dtype))
        hs.append(h2.to(h.dtype))
    return tuple(xs + hs)


@reference("Adam", domain=TRAINING)
def adam_ref(*data, alpha=0.9, beta=0.999, epsilon=0.0, norm_coefficient=0.0, norm_coefficient_post=0.0):
    r, t, items = _groups(data, 4)
    tf = t.to(torch.float64)
    rate = torch.where(t > 0, r * torch.sqrt(1 - beta ** tf) / (1 - alpha ** tf), r.to(torch.float64))
    xs, vs, hs = [], [], []
    for x, g, v, h in items:
        gr = norm_coefficient * x + g
        v2 = alpha * v + (1 - alpha) * gr
        h2 = beta * h + (1 - beta) * gr * gr
        x2 = x - rate.to(x.dtype) * (v2 / (torch.sqrt(h2) + epsilon))
        xs.append(((1 - norm_coefficient_post) * x2).to(x.dtype))
        vs.append(v2.to(v.dtype))
        hs.append(h2.to(h.dtype))
    return tuple(xs + vs + hs)


@reference("Momentum", domain=TRAINING)
def momentum_ref(*data, alpha=0.9, beta=1.0, mode="standard", norm_coefficient=0.0):
    r, t, items = _groups(data, 3)
    xs, vs = [], []
    for x, g, v in items:
        gr = norm_coefficient * x + g
        b = torch.where(t > 0, torch.tensor(beta, dtype=x.dtype), torch.tensor(1.0, dtype=x.dtype))
        v2 = alpha * v + b * gr
        x2 = x - r * (gr + alpha * v2 if mode == "nesterov" else v2)
        xs.append(x2.to(x.dtype))
        vs.append(v2.to(v.dtype))
    return tuple(xs + vs)


@infer("Adagrad", "Adam", "Momentum", domain=TRAINING)
def optimizer_infer(node):
    k = {"Adagrad": 3, "Adam": 4, "Momentum": 3}[node.op]
    n = (len(node.inputs) - 2) // k
    xs = [in_info(node, 2 + i) for i in range(n)]
    states = [in_info(node, 2 + (j + 2) * n + i) for j in range(k - 2) for i in range(n)]
    return xs + states


# ---- ai.onnx.ml -----------------------------------------------------------------------------------------
@reference("Binarizer", domain=ML)
def binarizer_ref(x, threshold=0.0):
    return (x > threshold).to(x.dtype)


infer("Binarizer", domain=ML)(infer_same)


@reference("ArrayFeatureExtractor", domain=ML)
def array_feature_extractor_ref(x, indices):
    idx = indices.reshape(-1).to(torch.int64)
    y = x.index_select(x.dim() - 1, idx)
    return y.reshape(1, -1) if x.dim() == 1 else y


@infer("ArrayFeatureExtractor", domain=ML)
def array_feature_extractor_infer(node):
    (dt, xs), (_, ids) = in_info(node, 0), in_info(node, 1)
    k = 1
    for d in ids:
        k = norm(k * d)
    return [(dt, (1, k) if len(xs) == 1 else tuple(xs[:-1]) + (k,))]
