"""Control flow: If, Loop, Scan. Bodies are ir subgraphs (node attributes) run by ops.interpreter;
their trailing node inputs are the captured outer-scope values (see ir.subgraph)."""
from __future__ import annotations

import numpy as np
import torch

from .. import dtypes
from ..errors import ShapeError, TensorforgeError
from ..ir.subgraph import n_formal
from ..ir.symbolic import eq, free_symbols, symbol
from .common import dd_dim, known_ints, obj_array, to_obj
from .interpreter import run_graph
from .registry import extra, infer, reference, symval


def split_captures(body, ins):
    """(formal inputs, captured values) of a control-flow reference's positional inputs."""
    k = len(ins) - len(body.captures)
    return list(ins[:k]), list(ins[k:])


def known_bool(v):
    """A condition value's truth when known at build time (constant or integer contents), else None."""
    if v is None:
        return None
    if v.const is not None and v.const.numel() >= 1:
        return bool(v.const.reshape(-1)[0])
    if v.sym is not None and v.sym.size >= 1:
        x = v.sym.reshape(-1)[0]
        if isinstance(x, (bool, int, np.bool_, np.integer)):
            return bool(x)
    p = v.producer  # Cast(...) / Not(...) of a known truth (exporters wrap shape tests in both)
    if p is not None and p.op in ("Cast", "Not") and p.domain in ("", "ai.onnx") and p.inputs[0] is not None:
        inner = known_bool(p.inputs[0])
        return None if inner is None else (not inner if p.op == "Not" else inner)
    return None


ITER_PREFIX = "it_"  # the iteration-number symbol of a Loop body (never seen outside the body)


def merge_shape(node, tag, a, b):
    """The shape of a value that is `a` on one path and `b` on another: unequal dims become
    data-dependent (known after the layer runs)."""
    if a is None or b is None or len(a) != len(b):
        raise ShapeError(f"node '{node.name}' ({node.op}): {tag} has rank {len(a or ())} on one path and "
                         f"{len(b or ())} on another (not supported)")
    merged = tuple(x if eq(x, y) else dd_dim(node, f"_{tag}_{j}") for j, (x, y) in enumerate(zip(a, b)))
    return _outer(node, tag, merged)


def _bind(v, dtype, shape):
    v.dtype, v.shape, v.const, v.sym = dtype, None if shape is None else tuple(shape), None, None


def _empty_like_output(v, device, lead=()):
    """A zero-length stack of a body output that never ran (static dims kept, others 0)."""
    shape = tuple(lead) + tuple(d if isinstance(d, int) else 0 for d in (v.shape or ()))
    return torch.empty(shape, dtype=dtypes.to_torch(v.dtype or "float32"), device=device)


def _device_of(*ts, default=None):
    for t in ts:
        if isinstance(t, torch.Tensor):
            return t.device
    return default


# ---- If --------------------------------------------------------------------------------------

@reference("If")
def if_ref(cond, *captures, then_branch, else_branch, _opset=None, _device=None):
    branch = then_branch if bool(cond.reshape(-1)[0]) else else_branch
    return tuple(run_graph(branch, [], captures, _opset, _device))


@extra("If", "infer_subgraphs")
def _if_bodies(node, infer_body):
    """Infer both branches. With an unknown condition a branch that does not type-check with these
    inputs (silero's 8 kHz branch on a 16 kHz frame: ONNX Runtime fails there too) is kept untyped
    (metadata "untyped"): taking it at run time raises; the node's types come from the other one."""
    known = known_bool(node.inputs[0])
    names = ["then_branch", "else_branch"]
    if known is False:
        names.reverse()
    errors = []
    for i, k in enumerate(names):
        try:
            infer_body(node.attrs[k])
        except TensorforgeError as e:  # a dead branch may even hold unsupported ops
            if (known is not None and i == 0) or (known is None and not isinstance(e, ShapeError)):
                raise
            node.attrs[k].metadata["untyped"] = str(e)
            errors.append(e)
    if len(errors) == 2:
        raise errors[0]


def _typed(sub) -> bool:
    return not sub.metadata.get("untyped")


@infer("If")
def if_infer(node):
    t, e = node.attrs["then_branch"], node.attrs["else_branch"]
    then, other = t.outputs, e.outputs
    known = known_bool(node.inputs[0])
    if known is None and not (_typed(t) and _typed(e)):
        known = _typed(t)
    if known is not None:
        return [(v.dtype, v.shape) for v in (then if known else other)]
    if len(then) != len(other):
        raise ShapeError(f"node '{node.name}' (If): branches have {len(then)} and {len(other)} outputs")
    return [(a.dtype, merge_shape(node, f"o{i}", a.shape, b.shape)) for i, (a, b) in enumerate(zip(then, other))]


@symval("If", always=True)
def if_sym(node, *_):
    """A known condition forwards the taken branch's known contents (shape values through If)."""
    known = known_bool(node.inputs[0])
    if known is None:
        return None
    return [to_obj(v) for v in node.attrs["then_branch" if known else "else_branch"].outputs]


@extra("If", "eager_reason")
def _if_eager(node) -> str:
    return "run-time condition read on the host (one sync); branches run by the reference interpreter"


# ---- Loop ------------------------------------------------------------------------------------

@reference("Loop")
def loop_ref(M, cond, *rest, body, _opset=None, _device=None):
    state, captures = split_captures(body, rest)
    dev = _device or _device_of(*state, *captures, M, cond, default=torch.device("cpu"))
    trip = None if M is None else int(M.reshape(-1)[0])
    go = True if cond is None else bool(cond.reshape(-1)[0])
    n = len(state)
    scans = [[] for _ in body.outputs[1 + n:]]
    i = 0
    while go and (trip is None or i < trip):
        outs = run_graph(body, [torch.tensor(i, dtype=torch.int64, device=dev), torch.tensor(go, device=dev),
                                *state], captures, _opset, _device)
        go, state = bool(outs[0].reshape(-1)[0]), list(outs[1:1 + n])
        for s, t in zip(scans, outs[1 + n:]):
            s.append(t)
        i += 1
    stacked = [torch.stack(s) if s else _empty_like_output(v, dev, (0,))
               for s, v in zip(scans, body.outputs[1 + n:])]
    return tuple(state + stacked)


@extra("Loop", "infer_subgraphs")
def _loop_bodies(node, infer_body):
    """Carried values may change shape between iterations: re-infer once with unequal dims unknown."""
    body = node.attrs["body"]
    init = node.inputs[2:n_formal(node)]
    shapes = [v.shape for v in init]
    for _ in range(2):
        _bind(body.inputs[0], "int64", ())
        body.inputs[0].sym = obj_array([symbol(f"{ITER_PREFIX}{node.name}")], ())  # slices by iteration type-check
        _bind(body.inputs[1], "bool", ())
        for b, v, s in zip(body.inputs[2:], init, shapes):
            _bind(b, v.dtype, s)
        infer_body(body)
        new = [merge_shape(node, f"c{k}", s, o.shape) for k, (s, o) in enumerate(zip(shapes, body.outputs[1:]))]
        if all(len(a) == len(b) and all(eq(x, y) for x, y in zip(a, b)) for a, b in zip(new, shapes)):
            break
        shapes = new


def _trip_count(node):
    """The number of iterations when known at build time (a constant M and no early exit), else a
    data-dependent dim."""
    body = node.attrs["body"]
    m = node.inputs[0]
    cond_in = node.inputs[1] if len(node.inputs) > 1 else None
    out = body.outputs[0]
    while out.producer is not None and out.producer.op == "Identity":  # exporters pass cond through Identity
        out = out.producer.inputs[0]
    stays = out is body.inputs[1] or known_bool(out) is True
    trip = known_ints(m) if m is not None else None  # a constant or a shape value (symbolic dim)
    if trip and (cond_in is None or known_bool(cond_in) is True) and stays:
        return trip[0]
    return dd_dim(node, "_trip")


@infer("Loop")
def loop_infer(node):
    body = node.attrs["body"]
    n = n_formal(node) - 2
    carried = [(o.dtype, merge_shape(node, f"c{k}", b.shape, o.shape))
               for k, (b, o) in enumerate(zip(body.inputs[2:2 + n], body.outputs[1:1 + n]))]
    trip = _trip_count(node)
    return carried + [(o.dtype, (trip,) + _outer(node, f"s{k}", o.shape)) for k, o in enumerate(body.outputs[1 + n:])]


def _outer(node, tag, shape):
    """A body shape as seen outside: dims that depend on the iteration number are data-dependent."""
    return tuple(dd_dim(node, f"_{tag}_{j}") if any(s.startswith(ITER_PREFIX) for s in free_symbols([d])) else d
                 for j, d in enumerate(shape))




@extra("Loop", "eager_reason")
def _loop_eager(node) -> str:
    return "trip count / condition read on the host every iteration; body run by the reference interpreter"
