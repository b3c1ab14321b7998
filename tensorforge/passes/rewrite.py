"""Rewrite rules as data: a small pattern matcher over the IR and one fixpoint driver.

A Rule is (pattern, rewrite): the pattern is a tree of Op / Var / Const matched upward from a
root node (commutative ops try both operand orders); rewrite(g, m) applies the change and
returns True, or declines after its own legality checks by returning Decline("why") (or False:
the reason is then unknown). The driver counts fires and declines (see instrument). Unless a rule sets
`shared=True`, every matched node but the root must have no users outside the match (the value
it produces disappears)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import torch

from ..ir import Graph, Node, Value
from ..ir.symbolic import eq
from .instrument import Decline, declined, fired  # noqa: F401 - Decline: rules import it from here

log = logging.getLogger("tensorforge")
COMMUTATIVE = frozenset(("Add", "Mul", "Max", "Min", "Sum", "And", "Or", "Xor", "Equal"))


# ---- patterns ---------------------------------------------------------------------------
class Var:
    """Any value; a name bound twice must bind the same Value."""

    def __init__(self, name: str | None = None, where: Callable | None = None):
        self.name, self.where = name, where

    def match(self, v, m):
        if v is None or (self.where is not None and not self.where(v)):
            return
        if self.name is None:
            yield m
        elif self.name in m.named:  # a name bound by an Op pattern: its output value
            if m.named[self.name].outputs[0] is v:
                yield m
        elif self.name in m.vals:
            if m.vals[self.name] is v:
                yield m
        else:
            yield m.bind(self.name, v)


class Const(Var):
    """A constant value; `scalar=True` requires one element; `value` compares approximately."""

    def __init__(self, name=None, scalar=True, value=None, rel=1e-4, where=None):
        super().__init__(name, where)
        self.scalar, self.value, self.rel = scalar, value, rel

    def match(self, v, m):
        if v is None or v.const is None or (self.scalar and v.const.numel() != 1):
            return
        if self.value is not None:
            x = float(v.const.reshape(-1)[0])
            if abs(x - self.value) > self.rel * max(abs(self.value), 1e-12):
                return
        yield from super().match(v, m)


class Op:
    """A node of op type `op` (or one of a tuple) producing the matched value from `args`.

    any_args: inputs are not matched; prefix: `args` match the first inputs only."""

    def __init__(self, op, *args, name: str | None = None, where: Callable | None = None,
                 commute: bool | None = None, any_args: bool = False, prefix: bool = False):
        self.ops = (op,) if isinstance(op, str) else tuple(op)
        self.args, self.name, self.where, self.any_args = args, name, where, any_args
        self.commute, self.prefix = commute, prefix

    def match(self, v, m):
        n = v.producer if v is not None else None
        if n is None or n.op not in self.ops or v is not n.outputs[0]:
            return
        yield from self.match_node(n, m)

    def match_node(self, n, m):
        if n.op not in self.ops or (self.where is not None and not self.where(n)):
            return
        if any(x is n for x in m.nodes) or (self.name in m.vals and m.vals[self.name] is not n.outputs[0]):
            return
        m = m.with_node(self.name, n)
        if self.any_args:
            yield m
            return
        ins = n.inputs[:len(self.args)] if self.prefix else n.inputs
        if len(ins) != len(self.args):
            return
        orders = [list(self.args)]
        commute = self.commute if self.commute is not None else n.op in COMMUTATIVE
        if commute and len(self.args) == 2:
            orders.append(list(self.args[::-1]))
        for args in orders:
            yield from _match_seq(args, ins, m)


class Alt:
    """The first of several alternative patterns that matches (all are tried on backtracking)."""

    def __init__(self, *pats):
        self.pats = pats
        self.ops = tuple(o for p in pats for o in getattr(p, "ops", ()))

    def match(self, v, m):
        for p in self.pats:
            yield from p.match(v, m)

    def match_node(self, n, m):
        for p in self.pats:
            if hasattr(p, "match_node"):
                yield from p.match_node(n, m)


def _match_seq(pats, vals, m):
    if not pats:
        yield m
        return
    for m2 in pats[0].match(vals[0], m):
        yield from _match_seq(pats[1:], vals[1:], m2)


class Match:
    """Bindings of one match: values and nodes by name, and all matched nodes (root first)."""

    def __init__(self, vals=None, named=None, nodes=()):
        self.vals, self.named, self.nodes = vals or {}, named or {}, tuple(nodes)

    def bind(self, name, v):
        return Match({**self.vals, name: v}, self.named, self.nodes)

    def with_node(self, name, n):
        named = {**self.named, name: n} if name else self.named
        return Match(self.vals, named, self.nodes + (n,))

    def __getitem__(self, name):
        return self.vals[name] if name in self.vals else self.named[name]

    def get(self, name, default=None):
        return self.vals.get(name, self.named.get(name, default))

    def scalar(self, name) -> float:
        return float(self.vals[name].const.reshape(-1)[0])

    @property
    def root(self) -> Node:
        return self.nodes[0]


# ---- rules and the driver ------------------------------------------------------------------
@dataclass
class Rule:
    """A rewrite rule; its algebra is the rewrite function's docstring."""
    name: str
    pattern: Op
    rewrite: Callable[[Graph, Match], bool]
    shared: bool = False

    @property
    def doc(self) -> str:
        return (self.rewrite.__doc__ or "").strip()


SHARED = "an inner value of the match has users outside it"


def alive(n: Node) -> bool:
    return bool(n.outputs) and all(v.producer is n for v in n.outputs)


def exclusive(g: Graph, nodes) -> bool:
    """True when the outputs of every node but the first are used only inside `nodes`."""
    ids = {id(n) for n in nodes}
    for n in nodes[1:]:
        for v in n.outputs:
            if g.is_output(v) or any(id(u) not in ids for u in v.users):
                return False
    return True


def apply_rules(g: Graph, rules, reverse: bool = False, max_sweeps: int = 50) -> Graph:
    """Run rules to a fixpoint: sweep the nodes (in reverse order if asked) trying every rule."""
    for _ in range(max_sweeps):
        changed = False
        order = list(reversed(g.nodes)) if reverse else list(g.nodes)
        for n in order:
            for rule in rules:
                if not alive(n) or n.op not in rule.pattern.ops:
                    continue
                for m in rule.pattern.match_node(n, Match()):
                    if not (rule.shared or exclusive(g, m.nodes)):
                        declined(rule.name, n.name, SHARED)
                        continue
                    done = rule.rewrite(g, m)
                    if done:
                        fired(rule.name)
                        changed = True
                        break
                    declined(rule.name, n.name, getattr(done, "reason", "declined (no reason given)"))
        if not changed:
            break
    g.prune_values()
    return g


def rule_pass(name: str, rules, reverse: bool = False):
    """A Graph -> Graph pass that runs `rules` to a fixpoint."""
    def run(g: Graph) -> Graph:
        return apply_rules(g, rules, reverse)
    run.__name__ = name
    run.__qualname__ = name
    run.__doc__ = f"Rewrite rules: {', '.join(r.name for r in rules)}."
    run.rules = list(rules)
    return run


# ---- graph surgery helpers -----------------------------------------------------------------
def ordered(g: Graph, nodes):
    pos = {id(n): i for i, n in enumerate(g.nodes)}
    return sorted(nodes, key=lambda n: pos[id(n)])


def fuse(g: Graph, nodes, op, inputs, attrs, outputs, rule: str, name=None, pointwise=False,
         domain="") -> Node:
    """Replace `nodes` by one node producing `outputs` (existing Values), at the last one's place.

    Its origin is the replaced nodes' origins in graph order (each once); its name is
    TensorRT's: 'a + b + c' (or 'fusedPointwiseNode(a, b, c)')."""
    nodes = ordered(g, list({id(n): n for n in nodes}.values()))
    origin = list(dict.fromkeys(o for n in nodes for o in (n.origin or [n.name])))  # a set, in order
    if name is None:
        name = f"fusedPointwiseNode({', '.join(origin)})" if pointwise else " + ".join(origin)
    last = g.nodes.index(nodes[-1])
    index = last - sum(1 for n in nodes[:-1])
    for n in nodes:
        g.remove_node(n)
    new = g.add_node(op, inputs, outputs, attrs, name=g.unique_node_name(name), origin=origin,
                     index=index, domain=domain)
    log.info("Fusing %s (%s)", new.name, rule)
    return new


def bypass(g: Graph, old: Value, new: Value) -> bool:
    """Make users of `old` read `new` (when `old` is a graph output, `new` takes over its name)."""
    if old is new:
        return False
    if g.is_output(old):
        if new.producer is None or g.is_output(new) or any(new is v for v in g.inputs):
            return False
        del g.values[new.name]
        g.values.pop(old.name, None)
        new.name = old.name
        g.values[new.name] = new
    g.replace_uses(old, new)
    return True


def insert_node(g: Graph, before: Node, op, inputs, attrs=None, base="aux", dtype=None, shape=None,
                origin=None) -> Value:
    """Add a helper node right before `before`; returns its (typed) output value."""
    out = g.new_value(base, dtype, shape)
    g.add_node(op, inputs, [out], attrs, name=g.unique_node_name(base), origin=origin or [],
               index=g.nodes.index(before))
    return out


def same_shape(a, b) -> bool:
    return a is not None and b is not None and len(a) == len(b) and all(eq(x, y) for x, y in zip(a, b))


def fits_into(small, big) -> bool:
    """True when `small` provably broadcasts into `big` without changing it."""
    if len(small) > len(big):
        return False
    for s, b in zip(reversed(small), reversed(big)):
        if not ((isinstance(s, int) and s == 1) or eq(s, b)):
            return False
    return True


def const_like(g: Graph, data: torch.Tensor, base: str) -> Value:
    return g.const(data.contiguous(), g.unique_name(base))


def scalar(v: Value):
    """Python float of a one-element constant, else None."""
    if v is None or v.const is None or v.const.numel() != 1:
        return None
    return float(v.const.reshape(-1)[0])
