"""Multi-head attention fusion: softmax(Q·Kᵀ·scale + mask)·V, with the head split / merge views
around it, becomes one fused.Attention layer (scaled_dot_product_attention)."""
from __future__ import annotations

import torch

from .. import dtypes
from ..ir import Graph
from ..ir.symbolic import broadcast, eq
from .rewrite import Decline, Op, Rule, fits_into, fuse, insert_node, rule_pass, same_shape, scalar

HUGE_NEG = -1e30  # Where fills at or below this are exact as additive masks (s + fill == fill)


def _single(g, v) -> bool:
    return len(v.users) == 1 and not g.is_output(v)


def _scores_chain(g, v, shape):
    """Walk from the softmax input down to Q·Kᵀ: (matmul, scale, mask pieces, nodes) or None."""
    scale, masks, nodes, seen_scale = 1.0, [], [], False
    while True:
        n = v.producer
        if n is None or not _single(g, v) or v is not n.outputs[0]:
            return None
        if n.op == "MatMul":
            return n, scale, masks, nodes
        if n.op in ("Mul", "Div"):
            a, b = n.inputs
            if n.op == "Mul" and scalar(a) is not None:
                a, b = b, a
            c = scalar(b)
            if c is None or c == 0 or not same_shape(a.shape, shape):
                return None
            scale, seen_scale, v = scale * (c if n.op == "Mul" else 1.0 / c), True, a
        elif n.op == "Add" and not seen_scale:
            a, b = n.inputs
            if not same_shape(a.shape, shape) or not (a.producer and a.producer.op in
                                                       ("Add", "Where", "Mul", "Div", "MatMul")):
                a, b = b, a
            if not same_shape(a.shape, shape) or not fits_into(b.shape, shape) or b.dtype != a.dtype:
                return None
            masks.append(("add", b, n))
            v = a
        elif n.op == "Where" and not seen_scale:
            c, a, b = n.inputs
            fill, keep_true = scalar(b), True
            if fill is None:
                fill, keep_true, a = scalar(a), False, b
            if fill is None or fill > HUGE_NEG or not same_shape(a.shape, shape) or \
                    not fits_into(c.shape, shape):
                return None
            masks.append(("where", c, fill, keep_true, n))
            v = a
        else:
            return None
        nodes.append(n)


def _pre_scale(g, v):
    """An operand scaled by a scalar constant right before the matmul: (source, factor, nodes)."""
    n = v.producer
    if n is not None and n.op in ("Mul", "Div") and _single(g, v):
        a, b = n.inputs
        if n.op == "Mul" and scalar(a) is not None:
            a, b = b, a
        c = scalar(b)
        if c and same_shape(a.shape, v.shape):
            return a, (c if n.op == "Mul" else 1.0 / c), [n]
    return v, 1.0, []


def _reshape_dims(x_shape, y_shape):
    dims, unknown = [], 0
    for j, d in enumerate(y_shape):
        if isinstance(d, int) and d > 0:
            dims.append(d)
        elif j < len(x_shape) and eq(x_shape[j], d) and not (isinstance(d, int) and d == 0):
            dims.append(0)
        else:
            dims.append(-1)
            unknown += 1
    return dims if unknown <= 1 else None


def _view_step(n, v):
    """The view step that node n applies to produce v, or None when it is not a pure view."""
    x = n.inputs[0]
    if n.op in ("Reshape", "Squeeze", "Unsqueeze", "Flatten"):
        dims = _reshape_dims(x.shape, v.shape)
        return None if dims is None else ["reshape", dims]
    if n.op == "Transpose":
        return ["transpose", list(n.attrs.get("perm", list(range(len(x.shape)))[::-1]))]
    if n.op == "Gather":
        idx = n.inputs[1]
        ax = n.attrs.get("axis", 0) % len(x.shape)
        if idx.const is None or idx.const.dim() != 0 or not isinstance(x.shape[ax], int):
            return None
        return ["select", ax, int(idx.const) % x.shape[ax]]
    if n.op == "Split":
        ax = n.attrs.get("axis", 0) % len(x.shape)
        sizes = [o.shape[ax] for o in n.outputs]
        if not all(isinstance(s, int) for s in sizes):
            return None
        j = next(i for i, o in enumerate(n.outputs) if o is v)
        return ["narrow", ax, sum(sizes[:j]), sizes[j]]
    return None


def _trace_in(v):
    """The view chain producing v: [(node, step, value)] from the source outward, and the source."""
    chain = []
    while v.producer is not None:
        step = _view_step(v.producer, v)
        if step is None:
            break
        chain.append((v.producer, step, v))
        v = v.producer.inputs[0]
    return v, chain[::-1]


def _trim(g, core, chains):
    """Cut chains so every absorbed node's outputs are used only by absorbed nodes."""
    while True:
        absorbed = {id(n) for n in core} | {id(n) for _, ch in chains for n, _, _ in ch}
        changed = False
        for i, (src, ch) in enumerate(chains):
            cut = -1
            for j, (n, _, _) in enumerate(ch[:-1] if ch else []):
                if any(g.is_output(o) or any(id(u) not in absorbed for u in o.users) for o in n.outputs):
                    cut = j
            last = ch[-1][0] if ch else None
            if last is not None and any(g.is_output(o) or any(id(u) not in absorbed for u in o.users)
                                        for o in last.outputs):
                cut = len(ch) - 1
            if cut >= 0:
                chains[i] = (ch[cut][2], ch[cut + 1:])
                changed = True
        if not changed:
            return chains


def _trace_out(g, v):
    """Single-use view nodes after the attention output: (steps, nodes, final value)."""
    steps, nodes = [], []
    while _single(g, v):
        n = v.users[0]
        if n.op not in ("Transpose", "Reshape") or n.inputs[0] is not v:
            break
        step = _view_step(n, n.outputs[0])
        if step is None:
            break
        steps.append(step)
        nodes.append(n)
        v = n.outputs[0]
    return steps, nodes, v


def attention(g: Graph, m) -> bool:
    """softmax(Q·Kᵀ·s + M)·V -> Attention(Q, K, V, M; scale=s), where M is the sum of the additive
    masks and of Where(c, s, fill ≤ -1e30) rewritten as + Where(c, 0, fill); the head split/merge
    views (Reshape, Transpose, Gather, Split) around Q, K, V and the output are absorbed."""
    root = m.root
    p, v4 = root.inputs
    sm = p.producer
    if sm is None or sm.op != "Softmax" or not _single(g, p) or len(p.shape) < 3:
        return Decline("the probabilities are not a single-use Softmax of rank >= 3")
    rank = len(p.shape)
    default = -1 if g.opset >= 13 else 1
    if sm.attrs.get("axis", default) % rank != rank - 1:
        return Decline("Softmax is not over the last axis")
    found = _scores_chain(g, sm.inputs[0], p.shape)
    if found is None:
        return Decline("the scores are not MatMul(Q, K) with an optional scale and additive/boolean mask")
    qk, scale, masks, chain_nodes = found
    q4, s_q, nq = _pre_scale(g, qk.inputs[0])
    k4, s_k, nk = _pre_scale(g, qk.inputs[1])
    qs, ks, vs = q4.shape, k4.shape, v4.shape
    if not (len(qs) == len(ks) == len(vs) == rank and same_shape(qs[:-2], ks[:-2]) and
            same_shape(qs[:-2], vs[:-2]) and eq(ks[-1], vs[-2]) and eq(qs[-1], ks[-2])):
        return Decline("Q, K, V shapes do not line up as attention")
    if len({q4.dtype, k4.dtype, v4.dtype}) != 1 or q4.dtype not in ("float16", "float32", "bfloat16", "float64"):
        return Decline("Q, K, V dtypes differ or are not floating")
    core = [root, sm, qk] + chain_nodes + nq + nk
    chains = _trim(g, core, [_trace_in(q4), _trace_in(k4), _trace_in(v4)])
    out_steps, out_nodes, out = _trace_out(g, root.outputs[0])
    if any(g.is_output(o) or any(u not in core for u in o.users) for n in core[1:] for o in n.outputs):
        return Decline("an intermediate (scores or probabilities) is read outside the attention")
    mask = _mask_value(g, root, masks, p)
    attrs = {"q_view": [s for _, s, _ in chains[0][1]], "k_view": [s for _, s, _ in chains[1][1]],
             "v_view": [s for _, s, _ in chains[2][1]], "out_view": out_steps, "k_transposed": 1,
             "scale": scale * s_q * s_k}
    nodes = core + [n for _, ch in chains for n, _, _ in ch] + out_nodes
    fuse(g, nodes, "fused.Attention", [chains[0][0], chains[1][0], chains[2][0], mask], attrs, [out],
         "MHA")
    return True


def _mask_value(g, root, masks, p):
    """Sum the mask pieces into one additive mask value (helper nodes before `root`)."""
    total = None
    for piece in masks:
        if piece[0] == "add":
            val, src = piece[1], piece[2]
        else:
            _, c, fill, keep_true, src = piece
            zero = g.const(torch.tensor(0.0, dtype=_dt(p)), g.unique_name("zero"))
            neg = g.const(torch.tensor(fill, dtype=_dt(p)), g.unique_name("fill"))
            args = [c, zero, neg] if keep_true else [c, neg, zero]
            val = insert_node(g, root, "Where", args, base=f"{src.name}.mask", dtype=p.dtype, shape=c.shape)
        if total is None:
            total = val
        else:
            total = insert_node(g, root, "Add", [total, val], base=f"{src.name}.mask", dtype=p.dtype,
                                shape=broadcast(total.shape, val.shape))
    return total


def _dt(v):
    return dtypes.to_torch(v.dtype)


RULES = [Rule("MHA", Op("MatMul", any_args=True), attention, shared=True)]
fuse_attention = rule_pass("fuse_attention", RULES)
