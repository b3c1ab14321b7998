"""ONNX sequence / optional TypeProtos -> the IR's container dtype strings (see ops.sequence)."""
from __future__ import annotations

import onnx

from .. import dtypes
from ..errors import TensorforgeError
from ..ir.symbolic import DATA_DEPENDENT_PREFIX, symbol


def type_string(tp: onnx.TypeProto, where: str) -> str:
    """`float32:2,?` for a tensor type, `seq(...)` / `opt(...)` for containers."""
    kind = tp.WhichOneof("value")
    if kind == "tensor_type":
        tt = tp.tensor_type
        elem = dtypes.from_onnx(tt.elem_type) if tt.elem_type else "float32"
        if not tt.HasField("shape"):
            return elem
        dims = [str(d.dim_value) if d.HasField("dim_value") else "?" for d in tt.shape.dim]
        return f"{elem}:{','.join(dims)}"
    if kind == "sequence_type":
        inner = type_string(tp.sequence_type.elem_type, where)
        return f"seq({inner})"
    if kind == "optional_type":
        return f"opt({type_string(tp.optional_type.elem_type, where)})"
    raise TensorforgeError(f"{where}: type {kind} is not supported (tensors, sequences and optionals are)")


def container_info(vi: onnx.ValueInfoProto):
    """(dtype, shape) of a sequence / optional graph input or output: its length is one
    data-dependent dim (a container lives outside the engine's memory plan)."""
    dt = type_string(vi.type, f"input '{vi.name}'")
    return dt, (symbol(f"{DATA_DEPENDENT_PREFIX}{vi.name}_len"),)
