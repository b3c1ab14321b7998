"""ai.onnx.ml ops (Binarizer, ArrayFeatureExtractor, TreeEnsemble) and TfIdfVectorizer."""
from __future__ import annotations

import torch

from ..errors import UnsupportedOpError
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


def _member_sets(modes, roots, true_ids, true_leaf, false_ids, false_leaf, members):
    """{node: set of values} for set-membership nodes, members consumed in the trees' depth-first order
    (true branch first), each set ended by a NaN (as onnx's reference reads them)."""
    vals, sets = iter(members), {}
    def walk(i, leaf):
        if leaf:
            return
        if modes[i] == 6:
            s = set()
            for v in vals:
                if v != v:  # NaN ends the set
                    break
                s.add(v)
            sets[i] = s
        walk(true_ids[i], true_leaf[i])
        walk(false_ids[i], false_leaf[i])
    for r in roots:
        walk(r, true_leaf[r] and false_leaf[r] and true_ids[r] == false_ids[r])
    return sets


@reference("TreeEnsemble", domain=ML)
def tree_ensemble_ref(x, nodes_splits, nodes_featureids, nodes_modes, nodes_truenodeids, nodes_falsenodeids,
                      nodes_trueleafs, nodes_falseleafs, leaf_targetids, leaf_weights, tree_roots, n_targets,
                      post_transform=0, aggregate_function=1, nodes_hitrates=None,
                      nodes_missing_value_tracks_true=None, membership_values=None):
    """Every (sample, tree) walks down in lockstep, one level per step, until all sit on leaves."""
    if post_transform:
        raise UnsupportedOpError(f"TreeEnsemble: post_transform={post_transform} is not supported")
    dev, n_nodes = x.device, len(nodes_featureids)
    modes = [int(m) for m in nodes_modes.reshape(-1).tolist()]
    sets = _member_sets(modes, tree_roots, nodes_truenodeids, nodes_trueleafs, nodes_falsenodeids,
                        nodes_falseleafs, membership_values.reshape(-1).tolist() if membership_values is not None else [])
    width = max([len(s) for s in sets.values()] + [1])
    table = torch.full((n_nodes, width), float("nan"), dtype=torch.float64)
    for i, s in sets.items():
        table[i, :len(s)] = torch.tensor(sorted(s), dtype=torch.float64)
    t = lambda v, dt=torch.int64: torch.as_tensor(v, dtype=dt).to(dev)  # noqa: E731 - attribute tables
    feat, split, mode = t(nodes_featureids), nodes_splits.to(dev, torch.float64).reshape(-1), t(modes)
    tid, fid, tleaf, fleaf = t(nodes_truenodeids), t(nodes_falsenodeids), t(nodes_trueleafs, torch.bool), \
        t(nodes_falseleafs, torch.bool)
    miss = t(nodes_missing_value_tracks_true or [0] * n_nodes, torch.bool)
    table = table.to(dev)
    roots = t(tree_roots)
    xs = x.to(torch.float64)
    cur = roots.expand(x.shape[0], -1).clone()
    leaf = (tleaf[roots] & fleaf[roots] & (tid[roots] == fid[roots])).expand_as(cur).clone()
    for _ in range(n_nodes + 1):
        if bool(leaf.all()):
            break
        at = torch.where(leaf, 0, cur)  # a leaf's index is not a node index
        v, s, m = xs.gather(1, feat[at]), split[at], mode[at]
        cond = torch.stack([v <= s, v < s, v >= s, v > s, v == s, v != s,
                            (v.unsqueeze(-1) == table[at]).any(-1)]).gather(0, m.unsqueeze(0))[0]
        cond = cond | (torch.isnan(v) & miss[at])
        nxt, nleaf = torch.where(cond, tid[at], fid[at]), torch.where(cond, tleaf[at], fleaf[at])
        cur, leaf = torch.where(leaf, cur, nxt), leaf | nleaf
    w = leaf_weights.to(dev, torch.float64).reshape(-1)[cur]
    tgt = t(leaf_targetids)[cur]
    agg = {0: "sum", 1: "sum", 2: "amin", 3: "amax"}[aggregate_function]
    big = torch.finfo(x.dtype).max  # onnx's reference starts MIN / MAX at the type's limits
    init = {"sum": 0.0, "amin": big, "amax": -big}[agg]
    y = torch.full((x.shape[0], n_targets), init, dtype=torch.float64, device=dev)
    y = y.scatter_reduce(1, tgt, w, agg, include_self=True)
    if aggregate_function == 0:
        y = y / len(tree_roots)
    return y.to(x.dtype)


@infer("TreeEnsemble", domain=ML)
def tree_ensemble_infer(node):
    x = node.inputs[0]
    return [(x.dtype, (x.shape[0], node.attrs["n_targets"]))]
