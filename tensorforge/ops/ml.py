"""ai.onnx.ml ops (Binarizer, ArrayFeatureExtractor) and TfIdfVectorizer."""
from __future__ import annotations

import torch

from ..ir.symbolic import norm
from .common import in_info, infer_same
from .registry import infer, reference

ML = "ai.onnx.ml"


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
