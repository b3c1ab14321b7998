"""Helpers shared by op definitions: common inference rules and attribute/input access."""
from __future__ import annotations

import numpy as np
import torch

from ..errors import ShapeError
from ..ir import tape
from ..ir.symbolic import DATA_DEPENDENT_PREFIX, broadcast, norm, symbol


def in_info(node, i):
    """(dtype, shape) of input i, or (None, None) when the input is omitted."""
    if i >= len(node.inputs) or node.inputs[i] is None:
        return None, None
    v = node.inputs[i]
    return v.dtype, v.shape


def has_input(node, i) -> bool:
    return i < len(node.inputs) and node.inputs[i] is not None


def known_ints(v):
    """Contents of a small int/float tensor as a python list of ints or sympy dims, or None."""
    if v is None:
        return None
    if v.const is not None:
        return [int(x) for x in v.const.reshape(-1).tolist()]
    if v.sym is not None:
        return [norm(x) for x in v.sym.reshape(-1).tolist()]
    return None


def known_values(v):
    """Contents of a const tensor as a flat python list (any dtype), or None."""
    if v is None or v.const is None:
        return None
    return v.const.reshape(-1).tolist()


def attr_or_input(node, attr: str, idx: int, default=None):
    """An op parameter that moved from attribute to input across opsets (axes, pads, ...)."""
    if attr in node.attrs:
        return node.attrs[attr]
    if has_input(node, idx):
        return known_ints(node.inputs[idx])
    return default


def dd_dim(node, tag=""):
    """The data-dependent dim of a node's output (known only after the layer runs)."""
    return symbol(f"{DATA_DEPENDENT_PREFIX}{node.name}{tag}")


def dd_dims(node, n: int, tag=""):
    """n data-dependent dims of a node's output (a shape computed at run time, e.g. Expand's)."""
    if not 0 <= n <= MAX_RANK:
        raise ShapeError(f"{node.op} '{node.name}': an output of rank {n}; ranks over {MAX_RANK} are not supported")
    return tuple(dd_dim(node, f"{tag}_{i}") for i in range(n))


MAX_RANK = 64  # torch's limit; a shape tensor longer than this is a corrupt or hostile model


def value_len(node, i: int) -> int:
    """Static length of 1-D input i (a shape/repeats tensor whose contents are not known)."""
    shp = node.inputs[i].shape
    if len(shp) != 1 or not isinstance(shp[0], int):
        raise ShapeError(f"{node.op} '{node.name}': input {i} must be a 1-D tensor of static length, got "
                         f"{list(shp)}")
    if not 0 <= shp[0] <= MAX_RANK:
        raise ShapeError(f"{node.op} '{node.name}': input {i} holds {shp[0]} dims; ranks over {MAX_RANK} are "
                         "not supported")
    return shp[0]


def scalar_int(t) -> int:
    """First element of a host tensor as a python int."""
    return int(t.reshape(-1)[0])


def scalar_item(t, default=None):
    """First element of a tensor as a python number (default when absent or empty)."""
    if t is None or (isinstance(t, torch.Tensor) and t.numel() == 0):
        return default
    return t.reshape(-1)[0].item() if isinstance(t, torch.Tensor) else t


def norm_axis(axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise ShapeError(f"axis {axis} out of range for rank {rank}")
    return axis % rank if rank else 0


# ---- generic inference rules --------------------------------------------------------------

def infer_same(node):
    """Output 0 has the dtype and shape of input 0."""
    return [in_info(node, 0)]


def infer_broadcast(node, dtype=None):
    """Output is the broadcast of all inputs; dtype of input 0 unless given."""
    shapes = [v.shape for v in node.inputs if v is not None]
    return [(dtype or node.inputs[0].dtype, broadcast(*shapes))]


def infer_bool_broadcast(node):
    return infer_broadcast(node, "bool")


def unary_ref(fn):
    """A one-input reference around fn (a python function: builtins have no readable signature)."""
    def ref(x):
        return fn(x)
    return ref


def tensor_arg(t):
    """Turn a host-side shape tensor (or list) into a list of python ints."""
    if t is None:
        return None
    if isinstance(t, torch.Tensor):
        return [int(x) for x in t.reshape(-1).tolist()]
    return [int(x) for x in np.asarray(t).reshape(-1).tolist()]


def obj_array(seq, shape=None):
    """A python sequence as an object ndarray (symbolic contents), optionally reshaped."""
    a = np.empty(len(seq), dtype=object)
    a[:] = list(seq)
    return a.reshape(shape) if shape is not None else a


def to_obj(v):
    """A value's symbolic contents (const or sym) as an object ndarray, or None."""
    if v is None:
        return None
    if v.sym is not None:
        return v.sym
    if v.const is not None and v.const.numel() <= 4096 and not v.const.is_floating_point():
        arr = np.empty(tuple(v.const.shape), dtype=object)
        arr.reshape(-1)[:] = [int(x) for x in v.const.reshape(-1).tolist()] if v.const.numel() else []
        return arr
    if v.const is not None and v.const.numel() <= 4096 and not tape.tracked(v.const):  # a weight of a
        # refittable build: its values may change, so they are no symbolic contents
        arr = np.empty(tuple(v.const.shape), dtype=object)
        arr.reshape(-1)[:] = v.const.reshape(-1).tolist() if v.const.numel() else []
        return arr
    return None
