"""Constant folding: any node whose inputs are all constants becomes a constant.

Algebra: f(c1, ..., cn) -> c. Shape arithmetic is included: a shape value whose symbolic
contents are all integers (Shape of a static tensor, and everything computed from it) becomes a
constant too, so that float math on shapes (sqrt(head_dim)) folds; symbolic shape values (a
dynamic batch) stay as runtime-evaluated shape tensors and their producer nodes are dropped.
"""
from __future__ import annotations

import logging

import numpy as np
import sympy
import torch

from .. import dtypes
from ..ir import Graph
from ..ir.symbolic import is_static
from ..ops import registry
from ..ops.interpreter import deterministic
from .quant.tables import keeps_dequantize

log = logging.getLogger("tensorforge")
FOLD_MAX_ELEMENTS = 1 << 24  # don't materialize huge constants


_SYM_DTYPES = ("int64", "int32", "float16", "bfloat16", "float32", "float64")


def _static_sym_to_const(v) -> None:
    """A shape value (int or float) whose contents are all numbers becomes a constant."""
    if v.const is None and v.sym is not None and v.dtype in _SYM_DTYPES:
        flat = v.sym.reshape(-1).tolist()
        if all(isinstance(x, (int, np.integer, float)) or (isinstance(x, sympy.Basic) and x.is_Number)
               for x in flat):
            wide = torch.float64 if "float" in v.dtype else torch.int64
            vals = [float(x) if wide == torch.float64 else int(x) for x in flat]
            v.const = torch.tensor(vals, dtype=wide).to(dtypes.to_torch(v.dtype)).reshape(
                tuple(int(d) for d in v.shape))


def _evaluate(g: Graph, node) -> bool:
    """Evaluate a node whose inputs are all constants; False when it must stay."""
    op = registry.get(node.op, node.domain, node.name)
    if not op.deterministic or op.data_dependent or not deterministic(node):  # bodies too (If/Loop/Scan)
        return False
    if not all(is_static(v.shape) and int(np.prod(v.shape, dtype=np.int64)) <= FOLD_MAX_ELEMENTS
               for v in node.outputs):
        return False
    outs = op.run([None if v is None else v.const for v in node.inputs], node.attrs, g.opset)
    for v, t in zip(node.outputs, outs):
        if t is None or tuple(t.shape) != tuple(v.shape):
            return False
    for v, t in zip(node.outputs, outs):
        v.const = t.contiguous()
    return True


def fold_constants(g: Graph) -> Graph:
    """Fold nodes with constant inputs (and static shape values) into constants."""
    for v in list(g.values.values()):
        _static_sym_to_const(v)
    folded = 0
    for node in list(g.nodes):
        for v in node.outputs:
            _static_sym_to_const(v)
        known = node.outputs and all(
            v.const is not None or (v.sym is not None and v.dtype in _SYM_DTYPES) for v in node.outputs)
        ins = [v for v in node.inputs if v is not None]
        if keeps_dequantize(node):  # the quantized weight stays behind its DQ for the quant passes
            node.outputs[0].const = None
            continue
        if not known and ins and all(v.const is not None for v in ins):
            known = _evaluate(g, node)
        if known:
            g.remove_node(node)
            folded += 1
    if folded:
        log.debug("fold_constants: folded %d nodes", folded)
    return g
