"""Sibling GEMM merge: MatMuls that read the same activation with constant weights (BERT's separate
Q, K, V projections) become one wider MatMul whose result is split along its last axis.

One GEMM of width ΣNᵢ reads the activation once and fills the GPU better than several narrow ones.
The Split costs nothing at run time: fuse_attention absorbs it into the attention layer's input
views (as it does for GPT-2's packed c_attn), and where it stays a layer its outputs are views of
the GEMM's result (no copy in the default direct activation-memory mode).

Quantized siblings (fused.QMatMul of one quantized activation, no bias input, epilogue or output Q,
identical attributes: the same x scale) merge the same way: weights concatenated along N, their
weight scales concatenated per output channel (a per-tensor scale repeated over its Nᵢ columns), or kept
as one scale when all siblings share it."""
from __future__ import annotations

import logging

import torch

from ..ir import Graph

log = logging.getLogger("tensorforge")
FLOATS = ("float16", "float32", "bfloat16", "float64")


def _bias_add(g: Graph, mm):
    """(Add node, bias Value) when mm's only user adds a constant 1-D bias of mm's width, else None."""
    y = mm.outputs[0]
    if len(y.users) != 1 or g.is_output(y) or y.users[0].op != "Add":
        return None
    add = y.users[0]
    if len(add.inputs) != 2 or add.inputs[0] is add.inputs[1]:
        return None
    bias = add.inputs[1] if add.inputs[0] is y else add.inputs[0]
    w = mm.inputs[1].shape[1]
    if bias.const is None or bias.dtype != y.dtype or tuple(bias.shape) != (w,) or \
            tuple(add.outputs[0].shape) != tuple(y.shape):
        return None
    return add, bias


def _quantized_ok(mm, a) -> bool:
    """A fused.QMatMul(a, Wq, -, w_scale) with constants and no epilogue, output Q or extras."""
    if mm.op != "fused.QMatMul" or len(mm.inputs) != 4 or mm.inputs[0] is not a or mm.inputs[2] is not None:
        return False
    wq, ws, at = mm.inputs[1], mm.inputs[3], mm.attrs
    if wq.const is None or wq.const.dim() != 2 or ws is None or ws.const is None or \
            ws.const.numel() not in (1, wq.const.shape[1]):
        return False
    return not (at.get("epilogue") or at.get("out_q") or at.get("extra_q")) and mm.outputs[0].dtype in FLOATS


def _sibling(g: Graph, mm, a):
    """(matmul, bias add or None, bias or None, result) for a mergeable MatMul(a, B) (or quantized
    fused.QMatMul), else None."""
    b, y = (mm.inputs[1], mm.outputs[0]) if len(mm.inputs) > 1 else (None, None)
    if _quantized_ok(mm, a):
        if not a.shape:
            return None
    elif mm.op != "MatMul" or len(mm.inputs) != 2 or mm.inputs[0] is not a or mm.inputs[1] is a:
        return None
    elif b.const is None or b.const.dim() != 2 or b.dtype != y.dtype or y.dtype not in FLOATS or not a.shape:
        return None
    found = _bias_add(g, mm)
    add, bias = found if found else (None, None)
    out = add.outputs[0] if add is not None else y
    if g.is_output(out):
        return None
    return mm, add, bias, out


def _groups(g: Graph, a):
    """Mergeable siblings reading `a`, grouped by (K, dtype, has bias); groups of two or more."""
    groups: dict = {}
    seen = set()
    for u in a.users:
        if id(u) in seen:
            continue
        seen.add(id(u))
        s = _sibling(g, u, a)
        if s is not None:
            key = (int(s[0].inputs[1].shape[0]), s[0].outputs[0].dtype, s[1] is not None, s[0].op,
                   s[0].inputs[1].dtype, repr(sorted(s[0].attrs.items())))
            groups.setdefault(key, []).append(s)
    return [grp for grp in groups.values() if len(grp) > 1]


def _merge(g: Graph, a, group) -> None:
    """Replace one group of siblings by MatMul(a, [B₁|B₂|…]) (+ [b₁|b₂|…]) -> Split(N₁, N₂, …)."""
    pos = {id(n): i for i, n in enumerate(g.nodes)}
    group = sorted(group, key=lambda s: pos[id(s[0])])
    mms, adds = [s[0] for s in group], [s[1] for s in group if s[1] is not None]
    widths = [int(mm.inputs[1].shape[1]) for mm in mms]
    dtype, shape = mms[0].outputs[0].dtype, tuple(a.shape[:-1]) + (sum(widths),)
    w = g.const(torch.cat([mm.inputs[1].const for mm in mms], dim=1).contiguous(),
                g.unique_name(f"{mms[0].inputs[1].name}.merged"))
    ins = [a, w]
    if mms[0].op == "fused.QMatMul":  # per-output-channel scales of the merged weight, or its one scale
        scales = [mm.inputs[3].const.reshape(-1).float() for mm in mms]
        if all(sc.numel() == 1 for sc in scales) and all(torch.equal(sc, scales[0]) for sc in scales):
            # one per-tensor scale for all (tensorforge quantize gives siblings one): the merged weight keeps it,
            # and cuBLASLt, which takes per-tensor FP8 weight scales only, can run the merged GEMM
            ins += [None, mms[0].inputs[3]]
        else:
            full = [sc.expand(n) for sc, n in zip(scales, widths)]
            ins += [None, g.const(torch.cat(full).contiguous(), g.unique_name(f"{mms[0].inputs[3].name}.merged"))]
    outs = [s[3] for s in group]
    idx = pos[id(mms[0])]
    op, domain, attrs = mms[0].op, mms[0].domain, dict(mms[0].attrs)
    for n in mms + adds:
        g.remove_node(n)
    name = " + ".join(mm.name for mm in mms)
    y = g.new_value(f"{mms[0].name}.merged", dtype, shape)
    g.add_node(op, ins, [y], attrs, name=g.unique_node_name(name), domain=domain, origin=_origin(mms), index=idx)
    idx += 1
    if adds:
        b = g.const(torch.cat([s[2].const for s in group]).contiguous(), g.unique_name(f"{adds[0].name}.merged"))
        z = g.new_value(f"{adds[0].name}.merged", dtype, shape)
        g.add_node("Add", [y, b], [z], {}, name=g.unique_node_name(" + ".join(n.name for n in adds)),
                   origin=_origin(adds), index=idx)
        y, idx = z, idx + 1
    _split(g, y, widths, outs, idx, group)
    log.info("Merging sibling GEMMs %s (MergeGemm)", name)


def _origin(nodes):
    return [o for n in nodes for o in (n.origin or [n.name])]


def _split(g: Graph, y, widths, outs, idx, group) -> None:
    """Split y along its last axis into the existing result values `outs`."""
    axis = len(y.shape) - 1
    sizes = torch.tensor(widths, dtype=torch.int64)
    ins, attrs = [y], {"axis": axis}
    if g.opset >= 13:
        ins.append(g.const(sizes, g.unique_name(f"{y.name}.sizes")))
    else:
        attrs["split"] = list(widths)
    g.add_node("Split", ins, outs, attrs, name=g.unique_node_name(f"{y.name}.split"), origin=[], index=idx)


def merge_gemm(g: Graph) -> Graph:
    """MatMul(a, Bᵢ) (+ bᵢ) for i = 1..k, constant 2-D Bᵢ [K, Nᵢ] of one dtype and constant 1-D
    biases bᵢ [Nᵢ] (an Add that is the MatMul's only user, either operand order) ==
    Split(MatMul(a, concat(Bᵢ, axis=1)) (+ concat(bᵢ)), [N₁, …, N_k], axis=-1); results that are
    graph outputs are left alone, and siblings with and without a bias are merged separately."""
    for a in list(g.values.values()):
        for group in _groups(g, a):
            _merge(g, a, group)
    g.prune_values()
    return g
