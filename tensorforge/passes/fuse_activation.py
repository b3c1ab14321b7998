"""Activation recognition: GELU (erf and tanh forms) and HardSwish from their decomposed forms.

Products are matched up to association and commutation: a chain of single-use Mul / Div-by-
constant nodes is flattened into (constant coefficient, factor values)."""
from __future__ import annotations

import math

from ..ir import Graph
from .rewrite import Decline, Op, Rule, exclusive, fuse, rule_pass, same_shape, scalar

SQRT1_2 = 1 / math.sqrt(2)
SQRT_2_PI = math.sqrt(2 / math.pi)
NOT_GELU = "not 0.5·x·(1 + erf(x/√2)) or 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))"
NOT_HARD_SWISH = "not x·HardSigmoid(x; 1/6, 1/2) or x·Clip(x + 3, 0, 6)/6"
NOT_OWNED = "an inner value is used outside the pattern, or the shape or dtype differs from x's"


def _close(a, b, rel=1e-3):
    return a is not None and abs(a - b) <= rel * abs(b)


def flatten_product(g: Graph, v, nodes, root=True):
    """v as coef * prod(factors): descends through single-use Mul and Div-by-constant nodes."""
    n = v.producer
    single = root or (len(v.users) == 1 and not g.is_output(v))
    if n is None or not single or n.op not in ("Mul", "Div") or v is not n.outputs[0]:
        return 1.0, [v]
    a, b = n.inputs
    if n.op == "Div":
        c = scalar(b)
        if c is None or c == 0:
            return 1.0, [v]
        nodes.append(n)
        k, fs = _term(g, a, nodes)
        return k / c, fs
    nodes.append(n)
    ka, fa = _term(g, a, nodes)
    kb, fb = _term(g, b, nodes)
    return ka * kb, fa + fb


def _term(g, v, nodes):
    c = scalar(v)
    if c is not None:  # a one-element constant (rank checked by the caller on the result)
        return c, []
    return flatten_product(g, v, nodes, root=False)


def _plus_one(g, v, op, nodes):
    """v = Add(op(z), 1) -> z (single-use chain), else None."""
    n = v.producer
    if n is None or n.op != "Add" or len(v.users) != 1:
        return None
    a, b = n.inputs
    if _close(scalar(a), 1.0):
        a, b = b, a
    if not _close(scalar(b), 1.0) or a.producer is None or a.producer.op != op \
            or len(a.users) != 1:
        return None
    nodes += [n, a.producer]
    return a.producer.inputs[0]


def _scaled(g, v, x, coef, nodes):
    """True when v == coef * x through single-use Mul/Div nodes."""
    k, fs = flatten_product(g, v, nodes, root=False) if v.producer is not None else (1.0, [v])
    if len(v.users) != 1:
        return False
    return fs == [x] and _close(k, coef)


def _cube_plus(g, v, x, nodes):
    """v == x + 0.044715 * x^3 (Pow(x, 3) or x*x*x)."""
    n = v.producer
    if n is None or n.op != "Add" or len(v.users) != 1:
        return False
    for a, b in (n.inputs, n.inputs[::-1]):
        if a is not x:
            continue
        sub = []
        k, fs = flatten_product(g, b, sub, root=False)
        if len(b.users) != 1 or not _close(k, 0.044715):
            continue
        if fs == [x, x, x]:
            nodes += [n] + sub
            return True
        if len(fs) == 1 and fs[0].producer is not None and fs[0].producer.op == "Pow" and \
                fs[0].producer.inputs[0] is x and _close(scalar(fs[0].producer.inputs[1]), 3.0) and \
                len(fs[0].users) == 1:
            nodes += [n, fs[0].producer] + sub
            return True
    return False


def gelu(g: Graph, m) -> bool:
    """0.5·x·(1 + erf(x/√2)) -> Gelu(x); 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) ->
    Gelu(x, approximate='tanh') (any association/commutation of the products)."""
    root, nodes = m.root, []
    k, fs = flatten_product(g, root.outputs[0], nodes)
    if len(fs) != 2 or not _close(k, 0.5):
        return Decline(NOT_GELU)
    for x, t in (fs, fs[::-1]):
        sub = []
        z = _plus_one(g, t, "Erf", sub)
        if z is not None and _scaled(g, z, x, SQRT1_2, sub):
            return _emit(g, nodes + sub, x, root, "none")
        sub = []
        z = _plus_one(g, t, "Tanh", sub)
        if z is None:
            continue
        inner_nodes = []
        kz, fz = flatten_product(g, z, inner_nodes, root=False)
        if len(z.users) == 1 and len(fz) == 1 and _close(kz, SQRT_2_PI) and \
                _cube_plus(g, fz[0], x, inner_nodes):
            return _emit(g, nodes + sub + inner_nodes, x, root, "tanh")
    return Decline(NOT_GELU)


def _emit(g, nodes, x, root, approx) -> bool:
    nodes = [root] + [n for n in nodes if n is not root]
    if not exclusive(g, nodes) or not same_shape(x.shape, root.outputs[0].shape) or \
            x.dtype not in ("float16", "float32", "float64", "bfloat16"):
        return Decline(NOT_OWNED)
    fuse(g, nodes, "Gelu", [x], {"approximate": approx}, [root.outputs[0]], f"GELU-{approx}")
    return True


def hard_swish(g: Graph, m) -> bool:
    """x·HardSigmoid(x; 1/6, 1/2) -> HardSwish(x); x·Clip(x + 3, 0, 6)/6 -> HardSwish(x)."""
    root, nodes = m.root, []
    k, fs = flatten_product(g, root.outputs[0], nodes)
    if len(fs) != 2:
        return Decline(NOT_HARD_SWISH)
    for x, t in (fs, fs[::-1]):
        p = t.producer
        if p is None or len(t.users) != 1:
            continue
        if p.op == "HardSigmoid" and p.inputs[0] is x and _close(k, 1.0) and \
                _close(p.attrs.get("alpha", 0.2), 1 / 6) and _close(p.attrs.get("beta", 0.5), 0.5):
            return _emit_hs(g, nodes + [p], x, root)
        if p.op == "Clip" and _close(k, 1 / 6) and len(p.inputs) == 3 and scalar(p.inputs[1]) == 0.0 and \
                _close(scalar(p.inputs[2]), 6.0):
            a = p.inputs[0].producer
            if a is not None and a.op == "Add" and len(p.inputs[0].users) == 1 and \
                    any(u is x for u in a.inputs) and any(_close(scalar(u), 3.0) for u in a.inputs):
                return _emit_hs(g, nodes + [p, a], x, root)
    return Decline(NOT_HARD_SWISH)


def _emit_hs(g, nodes, x, root) -> bool:
    nodes = [root] + [n for n in nodes if n is not root]
    if not exclusive(g, nodes) or not same_shape(x.shape, root.outputs[0].shape):
        return Decline(NOT_OWNED)
    fuse(g, nodes, "HardSwish", [x], {}, [root.outputs[0]], "HardSwish")
    return True


RULES = [Rule("GELU", Op(("Mul", "Div"), any_args=True), gelu),
         Rule("HardSwish", Op(("Mul", "Div"), any_args=True), hard_swish)]
fuse_activations = rule_pass("fuse_activations", RULES)
