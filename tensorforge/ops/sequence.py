"""ONNX sequence ops: SequenceConstruct/Empty/Insert/Erase/At/Length, ConcatFromSequence,
SplitToSequence.

A sequence value is a `TensorSeq` (not a list: a reference returning a list would read as several
outputs). Its IR dtype names the element type and, when known, the element shape:
`seq(float32:2,?)` (rank 2, second dim unknown), `seq(float32)` (rank unknown); its IR shape is one
data-dependent dim (the length), so the engine never plans memory for it.
"""
from __future__ import annotations

import torch

from .. import dtypes
from ..errors import ShapeError
from .common import dd_dim, known_ints, scalar_int
from .registry import extra, infer, reference


class TensorSeq:
    """An ONNX sequence of tensors (immutable: ops return new ones)."""

    def __init__(self, items=(), elem: str | None = None):
        self.items, self.elem = list(items), elem

    def __len__(self):
        return len(self.items)

    def __iter__(self):
        return iter(self.items)

    def __getitem__(self, i):
        return self.items[i]

    def clone(self):
        return TensorSeq([t.clone() for t in self.items], self.elem)

    def __repr__(self):
        return f"TensorSeq({[tuple(t.shape) for t in self.items]})"


def is_container(dt) -> bool:
    """A sequence or optional dtype (held by the runtime as python objects, not tensors)."""
    return isinstance(dt, str) and dt.startswith(("seq(", "opt("))


def seq_type(elem: str, shape) -> str:
    """`seq(elem:d0,d1)` for an element shape (None: rank unknown; non-int dims print as ?)."""
    if shape is None:
        return f"seq({elem})"
    return f"seq({elem}:{','.join(str(d) if isinstance(d, int) else '?' for d in shape)})"


def parse_seq(node, dt: str):
    """(element dtype, element shape or None) of a seq dtype; unknown dims become data-dependent."""
    if not dt or not dt.startswith("seq("):
        raise ShapeError(f"node '{node.name}' ({node.op}): expected a sequence input, got {dt}")
    body = dt[4:-1]
    if ":" not in body:
        return body, None
    elem, dims = body.split(":", 1)
    shape = [] if not dims else [int(d) if d.lstrip("-").isdigit() else dd_dim(node, f"_e{j}")
                                 for j, d in enumerate(dims.split(","))]
    return elem, tuple(shape)


def _seq_out(node, elem, shape):
    return (seq_type(elem, shape), (dd_dim(node, "_len"),))


def _common(shapes):
    """The element shape several tensors share (differing dims unknown; None when ranks differ)."""
    shapes = [s for s in shapes if s is not None]
    if not shapes or any(len(s) != len(shapes[0]) for s in shapes):
        return None
    return tuple(d if all(s[j] == d for s in shapes) else "?" for j, d in enumerate(shapes[0]))


# ---- construction and editing ------------------------------------------------------------------

@reference("SequenceConstruct")
def sequence_construct_ref(*xs):
    return (TensorSeq(xs),)


@infer("SequenceConstruct")
def sequence_construct_infer(node):
    return [_seq_out(node, node.inputs[0].dtype, _common([v.shape for v in node.inputs]))]


@reference("SequenceEmpty")
def sequence_empty_ref(dtype=1):
    return (TensorSeq([], dtypes.from_onnx(dtype)),)


@infer("SequenceEmpty")
def sequence_empty_infer(node):
    return [_seq_out(node, dtypes.from_onnx(node.attrs.get("dtype", 1)), None)]


def _pos(s, position, insert=False):
    n = len(s) + (1 if insert else 0)
    p = (len(s) if insert else n - 1) if position is None else scalar_int(position)
    if not -n <= p < n:
        raise IndexError(f"sequence position {p} out of range for length {len(s)}")
    return p % n


@reference("SequenceInsert")
def sequence_insert_ref(s, t, position=None):
    items = list(s)
    items.insert(_pos(s, position, True), t)
    return (TensorSeq(items, s.elem),)


@reference("SequenceErase")
def sequence_erase_ref(s, position=None):
    items = list(s)
    del items[_pos(s, position)]
    return (TensorSeq(items, s.elem),)


@infer("SequenceInsert", "SequenceErase")
def sequence_edit_infer(node):
    elem, shape = parse_seq(node, node.inputs[0].dtype)
    if node.op == "SequenceInsert":
        t = node.inputs[1]
        shape = t.shape if shape is None and node.inputs[0].producer is not None and \
            node.inputs[0].producer.op == "SequenceEmpty" else _common([shape, t.shape])
        elem = t.dtype
    return [_seq_out(node, elem, shape)]


# ---- reading ---------------------------------------------------------------------------------------

@reference("SequenceAt")
def sequence_at_ref(s, position):
    return s[_pos(s, position)]


@infer("SequenceAt")
def sequence_at_infer(node):
    elem, shape = parse_seq(node, node.inputs[0].dtype)
    if shape is None:
        raise ShapeError(f"node '{node.name}' (SequenceAt): element rank of the sequence is unknown")
    return [(elem, shape)]


@reference("SequenceLength")
def sequence_length_ref(s):
    return torch.tensor(len(s), dtype=torch.int64)


infer("SequenceLength")(lambda node: [("int64", ())])


@reference("ConcatFromSequence")
def concat_from_sequence_ref(s, axis, new_axis=0):
    return torch.stack(list(s), axis) if new_axis else torch.cat(list(s), axis)


@infer("ConcatFromSequence")
def concat_from_sequence_infer(node):
    elem, shape = parse_seq(node, node.inputs[0].dtype)
    if shape is None:
        raise ShapeError(f"node '{node.name}' (ConcatFromSequence): element rank of the sequence is unknown")
    new = node.attrs.get("new_axis", 0)
    rank = len(shape) + (1 if new else 0)
    axis = node.attrs["axis"] % rank
    out = list(shape)
    if new:
        out.insert(axis, dd_dim(node, "_n"))
    else:
        out[axis] = dd_dim(node, "_cat")
    return [(elem, tuple(out))]


@reference("SplitToSequence")
def split_to_sequence_ref(x, split=None, axis=0, keepdims=1):
    if split is None:
        parts = torch.split(x, 1, axis)
        return (TensorSeq([p.squeeze(axis) for p in parts] if not keepdims else list(parts)),)
    sizes = split.reshape(-1).tolist()
    parts = torch.split(x, sizes[0], axis) if split.dim() == 0 else torch.split(x, [int(v) for v in sizes], axis)
    return (TensorSeq(parts),)


@infer("SplitToSequence")
def split_to_sequence_infer(node):
    x = node.inputs[0]
    axis = node.attrs.get("axis", 0) % len(x.shape)
    shape = list(x.shape)
    if len(node.inputs) < 2 or node.inputs[1] is None:
        if not node.attrs.get("keepdims", 1):
            del shape[axis]
        else:
            shape[axis] = 1
        return [_seq_out(node, x.dtype, tuple(shape))]
    sizes = known_ints(node.inputs[1])
    shape[axis] = sizes[0] if sizes and len(set(sizes)) == 1 and node.inputs[1].shape != () else "?"
    return [_seq_out(node, x.dtype, tuple(shape))]


# ---- SequenceMap -----------------------------------------------------------------------------------

@reference("SequenceMap")
def sequence_map_ref(s, *rest, body, _opset=None, _device=None):
    from .control_flow import split_captures
    from .interpreter import run_graph
    formal, captures = split_captures(body, (s,) + tuple(rest))
    outs = [[] for _ in body.outputs]
    for i in range(len(s)):
        args = [x[i] if isinstance(x, TensorSeq) else x for x in formal]
        for o, r in zip(outs, run_graph(body, args, captures, _opset, _device)):
            o.append(r)
    return tuple(TensorSeq(o) for o in outs)


@extra("SequenceMap", "infer_subgraphs")
def _sequence_map_body(node, infer_body):
    body = node.attrs["body"]
    for b, v in zip(body.inputs, node.inputs):
        if v.dtype.startswith("seq("):
            b.dtype, b.shape = parse_seq(node, v.dtype)
        else:
            b.dtype, b.shape = v.dtype, v.shape
        b.const = b.sym = None
        if b.shape is None:
            raise ShapeError(f"node '{node.name}' (SequenceMap): element rank of input '{v.name}' is unknown")
    infer_body(body)


@infer("SequenceMap")
def sequence_map_infer(node):
    return [_seq_out(node, o.dtype, o.shape) for o in node.attrs["body"].outputs]


@extra("SequenceMap", "eager_reason")
def _sequence_map_eager(node) -> str:
    return "body run per element by the reference interpreter"
