"""Identity elimination: no-op nodes vanish, view chains collapse, transposes cancel or merge."""
from __future__ import annotations

import numpy as np
import torch

from .. import dtypes
from ..ir import Graph
from ..ir.symbolic import eq
from .rewrite import Decline, Op, Rule, Var, bypass, fuse, rule_pass, same_shape, scalar

VIEWS = ("Reshape", "Flatten", "Squeeze", "Unsqueeze")


def _noop(n) -> bool:
    """True when node n returns its first input unchanged."""
    x, y = n.inputs[0], n.outputs[0]
    if n.op == "Identity":
        return True
    if n.op == "Dropout":
        tm = n.inputs[2] if len(n.inputs) > 2 else None
        mask_used = len(n.outputs) > 1 and n.outputs[1].users
        return not mask_used and (tm is None or scalar(tm) == 0) and not n.attrs.get("training_mode")
    if n.op == "Cast":
        return dtypes.from_onnx(n.attrs["to"]) == x.dtype
    if n.op == "CastLike":
        return n.inputs[1].dtype == x.dtype
    if n.op == "Transpose":
        perm = n.attrs.get("perm", list(range(len(x.shape)))[::-1])
        return list(perm) == list(range(len(perm)))
    if n.op == "Concat":
        return len(n.inputs) == 1
    if n.op in VIEWS + ("Expand",):
        return x.dtype == y.dtype and same_shape(x.shape, y.shape)
    return False


def remove_identity(g: Graph, m) -> bool:
    """Identity(x), Dropout(x) [inference], Cast(x:T, to=T), Reshape/Flatten/Squeeze/Unsqueeze/
    Expand(x) to x's own shape, Transpose(x, identity perm), Concat(x) -> x."""
    n = m.root
    if not _noop(n) or (len(n.outputs) > 1 and (n.outputs[1].users or g.is_output(n.outputs[1]))):
        return Decline("not a no-op here (shape, dtype or perm changes, or a second output is used)")
    if not bypass(g, n.outputs[0], n.inputs[0]):
        return Decline("a graph output cannot be renamed onto its input")
    if not n.outputs[0].users and not g.is_output(n.outputs[0]):
        g.remove_node(n)
    return True


def reshape_target(g: Graph, in_shape, out_shape):
    """A Reshape shape-input for in_shape -> out_shape: a constant with 0/-1 where possible, else
    a symbolic shape value (evaluated at run time)."""
    tgt, unknown = [], []
    for j, d in enumerate(out_shape):
        if isinstance(d, int):
            if d == 0:
                return None
            tgt.append(d)
        elif j < len(in_shape) and eq(in_shape[j], d):
            tgt.append(0)
        else:
            tgt.append(-1)
            unknown.append(j)
    if len(unknown) <= 1:
        return g.const(torch.tensor(tgt, dtype=torch.int64), g.unique_name("shape"))
    v = g.new_value("shape", "int64", (len(out_shape),))
    v.sym = np.array(list(out_shape), dtype=object)
    return v


def merge_views(g: Graph, m) -> bool:
    """V2(V1(x)) -> Reshape(x, shape(V2(V1(x)))) for V1, V2 in Reshape/Flatten/Squeeze/Unsqueeze."""
    v2, x = m.root, m["x"]
    tgt = reshape_target(g, x.shape, v2.outputs[0].shape)
    if tgt is None:
        return Decline("no reshape target for the symbolic shapes")
    v1 = m["v1"]
    nodes = [v1, v2] if len(v1.outputs[0].users) == 1 and not g.is_output(v1.outputs[0]) else [v2]
    fuse(g, nodes, "Reshape", [x, tgt], {}, [v2.outputs[0]], "ViewChain")
    return True


def merge_transposes(g: Graph, m) -> bool:
    """Transpose(Transpose(x, p1), p2) -> Transpose(x, [p1[i] for i in p2]); identity -> x."""
    t2, t1, x = m.root, m["t1"], m["x"]
    r = len(x.shape)
    p1 = t1.attrs.get("perm", list(range(r))[::-1])
    p2 = t2.attrs.get("perm", list(range(r))[::-1])
    perm = [p1[i] for i in p2]
    nodes = [t1, t2] if len(t1.outputs[0].users) == 1 and not g.is_output(t1.outputs[0]) else [t2]
    fuse(g, nodes, "Transpose", [x], {"perm": perm}, [t2.outputs[0]], "TransposeMerge")
    return True


RULES = [
    Rule("IdentityElim", Op(("Identity", "Dropout", "Cast", "CastLike", "Transpose", "Concat", "Expand")
                            + VIEWS, any_args=True), remove_identity, shared=True),
    Rule("ViewChain", Op(VIEWS, Op(VIEWS, Var("x"), name="v1", prefix=True), prefix=True),
         merge_views, shared=True),
    Rule("TransposeMerge", Op("Transpose", Op("Transpose", Var("x"), name="t1")), merge_transposes,
         shared=True),
]
eliminate_identity = rule_pass("eliminate_identity", RULES)
