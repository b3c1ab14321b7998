"""Shape, dtype and value inference over the IR (the project's own; declared shapes are ignored).

For every node in order: if all its inputs are constants it is evaluated with the reference
(values become constants); else if its op can propagate symbolic values (shape arithmetic) and
all inputs are known, the symbolic contents are computed; then its dtype/shape rule runs.
"""
from __future__ import annotations

import numpy as np
import torch

from .. import dtypes
from ..errors import ShapeError, TensorforgeError
from ..ir import Graph, Node
from ..ir.subgraph import subgraphs
from ..ir.symbolic import DATA_DEPENDENT_PREFIX, free_symbols, norm
from ..ops import registry
from ..ops.common import to_obj
from ..ops.interpreter import deterministic
from .subgraphs import infer_bodies

FOLD_MAX_ELEMENTS = 1 << 24  # don't materialize huge constants while inferring


def _const_inputs(node: Node) -> bool:
    return all(v is None or v.const is not None for v in node.inputs) and any(
        v is not None for v in node.inputs) or (not node.inputs)


def _fits(shapes) -> bool:
    for s in shapes:
        if s is None or not all(isinstance(d, int) for d in s):
            return False
        if int(np.prod(s, dtype=np.int64)) > FOLD_MAX_ELEMENTS:
            return False
    return True


def infer_node(g: Graph, node: Node) -> None:
    """Fill dtype/shape (and const/sym when computable) of a node's outputs."""
    op = registry.get(node.op, node.domain, node.name)
    if subgraphs(node):  # control flow: type the bodies first (their outputs type the node's)
        infer_bodies(node, op, infer_graph)
    for i, v in enumerate(node.inputs):
        if v is not None and (v.dtype is None or v.shape is None):
            if v.const is not None:
                v.dtype, v.shape = dtypes.from_torch(v.const.dtype), tuple(v.const.shape)
            else:
                raise ShapeError(f"node '{node.name}' ({node.op}): input {i} '{v.name}' has unknown shape")
    try:
        infos = op.infer_at(g.opset)(node)
    except TensorforgeError:
        raise
    except Exception as e:  # a rule failing on odd input is a user-facing shape error
        raise ShapeError(f"node '{node.name}' ({node.op}): cannot infer output shape ({type(e).__name__}: {e})") from None
    if len(infos) < len(node.outputs):
        raise ShapeError(f"node '{node.name}' ({node.op}): {len(node.outputs)} outputs, rule gave {len(infos)}")
    for v, (dt, shp) in zip(node.outputs, infos):
        v.dtype, v.shape = dt, tuple(norm(d) for d in shp)
        bad = [d for d in v.shape if isinstance(d, int) and d < 0]
        if bad:  # odd attributes (pads, strides) of a file: refused here, not by a kernel at run time
            raise ShapeError(f"node '{node.name}' ({node.op}): output '{v.name}' would have negative dim "
                             f"{bad[0]} (shape {list(v.shape)}); check the node's attributes")
    if op.deterministic and _const_inputs(node) and _fits([v.shape for v in node.outputs]) \
            and (not subgraphs(node) or deterministic(node)):
        ins = [None if v is None else v.const for v in node.inputs]
        try:
            outs = op.run(ins, node.attrs, g.opset, len(node.outputs))
        except TensorforgeError:
            raise
        except Exception as e:
            raise ShapeError(f"node '{node.name}' ({node.op}): evaluation of constant inputs failed "
                             f"({type(e).__name__}: {e})") from None
        for v, t in zip(node.outputs, outs):
            if t is not None:
                v.const = t.contiguous() if isinstance(t, torch.Tensor) else torch.as_tensor(t)
                if tuple(v.const.shape) != v.shape:
                    raise ShapeError(f"node '{node.name}' ({node.op}): inferred shape {list(v.shape)} "
                                     f"but evaluated {list(v.const.shape)}")
        return
    sym = op.symval_at(g.opset)
    # contents are read only where they can matter (a weight's values decide no shape: a refit
    # replays the build's weight computations and must find none made on them here)
    if sym is not None and (op.symval_always or any(v is not None and v.sym is not None for v in node.inputs)):
        vals = [to_obj(v) if v is not None else None for v in node.inputs]
        if op.symval_always or all(x is not None for x, v in zip(vals, node.inputs) if v is not None):
            try:
                res = sym(node, *vals)
            except (TypeError, ValueError, IndexError, MemoryError):  # symbolic contents are optional
                res = None
            if res is not None:
                for v, r in zip(node.outputs, res):
                    if r is not None and np.asarray(r).size <= 4096 and not _data_dependent(r):
                        v.sym = np.asarray(r, dtype=object).reshape(tuple(int(d) for d in v.shape))


def _data_dependent(r) -> bool:
    """Contents that name a data-dependent dim (dd_*) are known only at run time: no sym."""
    names = free_symbols(np.asarray(r, dtype=object).reshape(-1).tolist())
    return any(n.startswith(DATA_DEPENDENT_PREFIX) for n in names)


def infer_graph(g: Graph) -> Graph:
    """Infer every node in order; constants get their dtype/shape from their data."""
    for v in g.values.values():
        if v.const is not None and v.producer is None:
            v.dtype, v.shape = dtypes.const_dtype(v.const, v.dtype), tuple(v.const.shape)
    for node in g.nodes:
        infer_node(g, node)
    return g
