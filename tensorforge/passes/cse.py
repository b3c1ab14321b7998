"""Common-subexpression elimination.

Algebra: f(x..., attrs) computed twice -> computed once (deterministic ops only); equal small
constants are shared first so that f(x, c) and f(x, c') with c == c' also merge."""
from __future__ import annotations

import hashlib
import json
import logging

import torch

from ..ir import Graph, tape
from ..ops import registry
from .rewrite import bypass

log = logging.getLogger("tensorforge")
CONST_DEDUPE_MAX = 1 << 16  # elements; larger weights are never byte-compared


def _tensor_key(t: torch.Tensor) -> str:
    data = t.detach().contiguous().cpu()
    h = hashlib.sha1(data.reshape(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b"").hexdigest()
    return f"{data.dtype}{tuple(data.shape)}{h}"


def _attr_key(attrs) -> str:
    def enc(a):
        if isinstance(a, torch.Tensor):
            return _tensor_key(a)
        return repr(a)
    try:
        return json.dumps(attrs, sort_keys=True, default=enc)
    except TypeError:  # keys of mixed types (a corrupted file's attribute): a key that never collides
        return repr(sorted((repr(k), enc(v)) for k, v in attrs.items()))


def _share_constants(g: Graph) -> int:
    seen, merged = {}, 0
    # a body's captures and inputs may carry a known value (.const) but are bound at run time: never the
    # constant the others are merged into (a body constant inlined from a capture would turn back into it)
    bound = {id(v) for v in g.captures} | {id(v) for v in g.inputs}
    for v in list(g.values.values()):
        if v.const is None or v.producer is not None or v.const.numel() > CONST_DEDUPE_MAX or g.is_output(v) \
                or tape.tracked(v.const) or id(v) in bound:  # tracked: a refittable weight, equal today only
            continue
        k = _tensor_key(v.const)
        if k in seen and seen[k] is not v:
            if v.users:
                g.replace_uses(v, seen[k])
                merged += 1
        else:
            seen[k] = v
    return merged


def cse(g: Graph) -> Graph:
    """Merge duplicate constants, then nodes with the same op, inputs and attributes."""
    merged = _share_constants(g)
    seen = {}
    for n in list(g.nodes):
        if not registry.has(n.op, n.domain):
            continue
        d = registry.get(n.op, n.domain)
        if not d.deterministic or d.data_dependent:
            continue
        key = (n.op, n.domain, tuple(id(v) if v is not None else None for v in n.inputs),
               len(n.outputs), _attr_key(n.attrs))
        first = seen.get(key)
        if first is None:
            seen[key] = n
            continue
        for a, b in zip(n.outputs, first.outputs):
            bypass(g, a, b)
        if not any(v.users or g.is_output(v) for v in n.outputs):
            g.remove_node(n)
            merged += 1
            log.debug("cse: %s == %s", n.name, first.name)
    g.prune_values()
    return g
