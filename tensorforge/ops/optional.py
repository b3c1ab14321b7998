"""ONNX optional ops: Optional, OptionalHasElement, OptionalGetElement.

An empty optional is None, a full one its value (tensor or TensorSeq). IR dtype: `opt(<inner>)`
where inner is a tensor type with its shape (`float32:2,3`) or a sequence type (`seq(...)`)."""
from __future__ import annotations

import torch

from ..errors import ShapeError
from .common import dd_dim
from .registry import infer, reference
from .sequence import seq_type


def tensor_type(elem: str, shape) -> str:
    """`float32:2,3` (shape None: rank unknown -> plain `float32`)."""
    if shape is None:
        return elem
    return f"{elem}:{','.join(str(d) if isinstance(d, int) else '?' for d in shape)}"


def parse_inner(node, dt: str):
    """(dtype, shape) of what an optional of dtype `dt` holds (a plain type reads as itself)."""
    inner = dt[4:-1] if dt.startswith("opt(") else dt
    if inner.startswith("seq("):
        return inner, (dd_dim(node, "_len"),)
    if ":" not in inner:
        raise ShapeError(f"node '{node.name}' ({node.op}): the optional's element shape is unknown")
    elem, dims = inner.split(":", 1)
    shape = [] if not dims else [int(d) if d.lstrip("-").isdigit() else dd_dim(node, f"_e{j}")
                                 for j, d in enumerate(dims.split(","))]
    return elem, tuple(shape)


def _inner_of(v) -> str:
    if v.dtype.startswith(("seq(", "opt(")):
        return v.dtype
    return tensor_type(v.dtype, v.shape)


@reference("Optional")
def optional_ref(x=None, type=None):  # noqa: A002 - ONNX's attribute name
    return (x,)


@infer("Optional")
def optional_infer(node):
    x = node.inputs[0] if node.inputs else None
    inner = _inner_of(x) if x is not None else (node.attrs.get("type") or seq_type("float32", None))
    return [(f"opt({inner})", (dd_dim(node, "_opt"),))]


@reference("OptionalHasElement")
def optional_has_element_ref(x=None):
    return torch.tensor(x is not None)


infer("OptionalHasElement")(lambda node: [("bool", ())])


@reference("OptionalGetElement")
def optional_get_element_ref(x):
    if x is None:
        raise ValueError("OptionalGetElement of an empty optional")
    return (x,)


@infer("OptionalGetElement")
def optional_get_element_infer(node):
    v = node.inputs[0]
    if not v.dtype.startswith("opt("):
        return [(v.dtype, v.shape)]
    return [parse_inner(node, v.dtype)]
