"""Read an ONNX model (path, 'zoo:NAME' or ModelProto) into an ir.Graph."""
from __future__ import annotations

import os
import re

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from .. import dtypes
from ..errors import TensorforgeError
from ..fileio import regular_file
from ..ir import Graph, tape
from ..ir.symbolic import symbol

MIN_IR_VERSION = 3
MAX_PROTO_BYTES = 2 << 30


def load_model_proto(model) -> onnx.ModelProto:
    """Resolve a path / 'zoo:NAME' / ModelProto into a ModelProto with external data loaded."""
    if isinstance(model, onnx.ModelProto):
        return model
    if not isinstance(model, (str, os.PathLike)):
        raise TensorforgeError(f"expected an ONNX path, 'zoo:NAME' or onnx.ModelProto, got {type(model).__name__}")
    spec = str(model)
    if spec.startswith("zoo:"):
        from .. import zoo
        return zoo.load(spec)
    path = os.path.expanduser(spec)
    if not os.path.exists(path):
        raise TensorforgeError(f"model file not found: {spec}")
    if os.path.isdir(path):
        raise TensorforgeError(f"model path is a directory, not an ONNX file: {spec}")
    size = regular_file(path, "model file").st_size  # a FIFO or /dev/zero would hang or fill memory
    if size >= MAX_PROTO_BYTES:
        raise TensorforgeError(f"{spec}: {size} bytes is over protobuf's 2 GiB limit; store the weights as "
                               "external data")
    try:
        proto = onnx.load(path, load_external_data=False)
    except Exception as e:  # protobuf DecodeError and friends
        raise TensorforgeError(f"{spec}: not a valid ONNX model ({type(e).__name__})") from None
    _load_external(proto, os.path.dirname(os.path.abspath(path)), spec)
    if not proto.graph.node and not proto.graph.output:
        raise TensorforgeError(f"{spec}: not a valid ONNX model (empty graph)")
    return proto


def _load_external(proto, base_dir: str, spec: str) -> None:
    """Load external-data tensors, with a clear error naming a missing data file."""
    from onnx.external_data_helper import _get_all_tensors, load_external_data_for_model
    missing = set()
    for t in _get_all_tensors(proto):
        if t.data_location == onnx.TensorProto.EXTERNAL:
            loc = next((e.value for e in t.external_data if e.key == "location"), None)
            if loc is None or not os.path.exists(os.path.join(base_dir, loc)):
                missing.add(loc)
    if missing:
        raise TensorforgeError(f"{spec}: external data file missing: {', '.join(sorted(map(str, missing)))}")
    try:
        load_external_data_for_model(proto, base_dir)
    except Exception as e:
        raise TensorforgeError(f"{spec}: cannot read external data ({type(e).__name__}: {e})") from None


def tensor_to_torch(t: onnx.TensorProto) -> torch.Tensor:
    """Convert an ONNX TensorProto to a CPU torch tensor (bfloat16/float8 included)."""
    if t.data_type == onnx.TensorProto.STRING:
        raise TensorforgeError(f"tensor '{t.name}': string tensors are not supported")
    try:
        name = dtypes.from_onnx(t.data_type)
    except TensorforgeError as e:
        raise TensorforgeError(f"tensor '{t.name}': {e}") from None
    if t.data_location == onnx.TensorProto.EXTERNAL and not t.raw_data:
        raise TensorforgeError(f"tensor '{t.name}': external data was not loaded")
    check_tensor_size(t, name)
    try:
        arr = numpy_helper.to_array(t)
    except (ValueError, TypeError, MemoryError) as e:
        raise TensorforgeError(f"tensor '{t.name}': data cannot be read ({type(e).__name__})") from None
    if name in ("bfloat16",) or name.startswith("float8"):
        bits = np.array(arr, order="C").view(np.uint16 if name == "bfloat16" else np.uint8)
        return torch.from_numpy(bits.copy()).view(dtypes.to_torch(name))
    if name in dtypes.STORAGE_ONLY:  # sub-byte types, unpacked by numpy_helper
        return dtypes.ml_to_torch(arr, name)
    arr = np.array(arr, order="C")  # (ascontiguousarray would turn 0-d into 1-d)
    if arr.dtype == np.uint16 or arr.dtype == np.uint32 or arr.dtype == np.uint64:
        return torch.from_numpy(arr.astype(np.int64)).to(dtypes.to_torch(name))
    return torch.from_numpy(arr.copy())


MAX_ELEMENTS = 2**40  # no real initializer is this large; above it a size is an overflow or a crafted file
_TYPED_FIELD = {"float32": "float_data", "float64": "double_data", "int64": "int64_data",
                "uint32": "uint64_data", "uint64": "uint64_data"}  # every other type: int32_data


def check_tensor_size(t: onnx.TensorProto, dtype: str) -> None:
    """Declared dims vs the data actually stored (raw or typed), before anything is converted."""
    if any(d < 0 for d in t.dims):
        raise TensorforgeError(f"tensor '{t.name}': negative dimension in {list(t.dims)}")
    n = 1
    for d in t.dims:
        n *= d
    if n > MAX_ELEMENTS:
        raise TensorforgeError(f"tensor '{t.name}': dims {list(t.dims)} give {n} elements, over {MAX_ELEMENTS}")
    packed = dtypes.packed_size(dtype, n)  # sub-byte types: several values per stored byte / value
    if t.raw_data or t.data_location == onnx.TensorProto.EXTERNAL:
        want = packed if packed is not None else n * dtypes.itemsize(dtype)
        if len(t.raw_data) != want:
            raise TensorforgeError(f"tensor '{t.name}': dims {list(t.dims)} ({dtype}) need {want} bytes of data "
                                   f"but it holds {len(t.raw_data)}")
        return
    have = len(getattr(t, _TYPED_FIELD.get(dtype, "int32_data")))
    if have != (packed if packed is not None else n):
        raise TensorforgeError(f"tensor '{t.name}': dims {list(t.dims)} need {n} values but it holds {have}")


def check_node_schema(n: onnx.NodeProto, name: str, opset: int) -> None:
    """Input count within the op's ONNX schema, each attribute of the kind (INT, FLOATS, ...) it declares."""
    if n.domain not in ("", "ai.onnx"):
        return
    try:
        schema = onnx.defs.get_schema(n.op_type, max(int(opset), 1), "")
    except Exception:  # noqa: BLE001 - unknown op or opset: the op registry reports it by name later
        return
    if not schema.min_input <= len(n.input) <= schema.max_input:
        raise TensorforgeError(f"node '{name}' ({n.op_type}): {len(n.input)} input(s), the op takes "
                               f"{schema.min_input}..{schema.max_input}")
    for a in n.attribute:
        spec = schema.attributes.get(a.name)
        if spec is not None and a.type != spec.type:
            want = onnx.AttributeProto.AttributeType.Name(spec.type)
            got = onnx.AttributeProto.AttributeType.Name(a.type) if a.type in \
                onnx.AttributeProto.AttributeType.values() else str(a.type)
            raise TensorforgeError(f"node '{name}' ({n.op_type}): attribute '{a.name}' is {got}, "
                                   f"the op needs {want}")


def _attr_value(a: onnx.AttributeProto):
    t = a.type
    A = onnx.AttributeProto
    if t == A.FLOAT:
        return float(a.f)
    if t == A.INT:
        return int(a.i)
    if t == A.STRING:
        return a.s.decode("utf-8", errors="replace")
    if t == A.TENSOR:
        return tensor_to_torch(a.t)
    if t == A.FLOATS:
        return [float(x) for x in a.floats]
    if t == A.INTS:
        return [int(x) for x in a.ints]
    if t == A.STRINGS:
        return [s.decode("utf-8", errors="replace") for s in a.strings]
    if t in (A.GRAPH, A.GRAPHS):
        return _SubgraphAttr(a.name)
    if t == A.TYPE_PROTO:  # Optional's element type
        from .types import type_string
        return type_string(a.tp, f"attribute '{a.name}'")
    if t == A.SPARSE_TENSOR:
        raise TensorforgeError(f"attribute '{a.name}': sparse tensors are not supported")
    return None


class _SubgraphAttr:
    """Marker for graph-valued attributes (If/Loop/Scan bodies), replaced by ir subgraphs."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"<subgraph {self.name}>"


_ANON_DIM = re.compile(r"\s*(|-?\d+|unk__\d+|[^A-Za-z0-9]*|(?i:none|null|unknown))\s*")


def anonymous_dim(name: str) -> bool:
    """Dim names that mean "unknown" rather than a shared size: '', '?', '-1', 'unk__N' (exporters
    write them for every free dim, so equal names must not tie dims together)."""
    return _ANON_DIM.fullmatch(name or "") is not None


def _value_info_shape(vi: onnx.ValueInfoProto, unk_counter):
    tt = vi.type.tensor_type
    if vi.type.WhichOneof("value") in ("sequence_type", "optional_type"):
        from .types import container_info
        return container_info(vi)
    if not vi.type.HasField("tensor_type"):
        raise TensorforgeError(f"input '{vi.name}': only tensor inputs are supported")
    dtype = dtypes.from_onnx(tt.elem_type) if tt.elem_type else None
    if dtype is None:
        raise TensorforgeError(f"input '{vi.name}' has no element type")
    if not tt.HasField("shape"):
        raise TensorforgeError(f"input '{vi.name}' has no shape (rank unknown)")
    shape = []
    for i, d in enumerate(tt.shape.dim):
        if d.HasField("dim_value") and d.dim_value > 0:
            shape.append(int(d.dim_value))
        elif d.HasField("dim_param") and not anonymous_dim(d.dim_param):
            shape.append(symbol(d.dim_param))
        else:  # an independent unknown: tied to no other dim
            shape.append(symbol(f"{vi.name}_dim{i}"))
            unk_counter[0] += 1
    return dtype, tuple(shape)


def to_graph(proto: onnx.ModelProto) -> Graph:
    """Convert a ModelProto into an (un-inferred) ir.Graph."""
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None and not proto.opset_import:
        raise TensorforgeError("model has no opset import")
    if opset is None:  # only other domains (ai.onnx.ml, training): default-domain semantics unused
        opset = onnx.defs.onnx_opset_version()
    if proto.ir_version and proto.ir_version < MIN_IR_VERSION:
        raise TensorforgeError(f"ONNX IR version {proto.ir_version} is too old (need >= {MIN_IR_VERSION})")
    gp = proto.graph
    g = Graph(gp.name or "graph", opset)
    g.metadata = {"producer": proto.producer_name, "ir_version": proto.ir_version,
                  "opsets": {o.domain or "ai.onnx": o.version for o in proto.opset_import}}
    for init in gp.initializer:  # declared type kept: sub-byte types live in a wider storage type
        t = g.value(init.name, dtypes.from_onnx(init.data_type)).const = tensor_to_torch(init)
        tape.mark_source(init.name, t)  # a refittable build records what is computed from it
    for sp in gp.sparse_initializer:
        raise TensorforgeError(f"sparse initializer '{sp.values.name}' is not supported")
    unk = [0]
    for vi in gp.input:
        if vi.name in g.values and g.values[vi.name].const is not None:
            continue  # initializer also listed as an input (IR < 4): it is a constant
        dtype, shape = _value_info_shape(vi, unk)
        v = g.value(vi.name, dtype, shape)
        g.inputs.append(v)
    for i, n in enumerate(gp.node):
        name = n.name or f"{n.op_type}_{i}"
        check_node_schema(n, name, opset)
        attrs = {a.name: _attr_value(a) for a in n.attribute}
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx"):
            g.value(n.output[0]).const = _constant_value(attrs, name)
            continue
        ins = [g.value(x) if x else None for x in n.input]
        for x, v in zip(n.input, ins):
            if v is not None and v.const is None and v.producer is None and v not in g.inputs:
                raise TensorforgeError(f"node '{name}' ({n.op_type}) reads '{x}', which nothing produces")
        if any(isinstance(a, _SubgraphAttr) for a in attrs.values()):  # control flow: bodies become ir subgraphs
            from .subgraphs import close_over, outer_lookup
            ins += close_over(g, n, attrs, name, outer_lookup(g, name, n.op_type))
        outs = [g.value(x) if x else g.new_value(f"{name}_unused{j}") for j, x in enumerate(n.output)]
        g.add_node(n.op_type, ins, outs, attrs, name=g.unique_node_name(name), domain=n.domain,
                   origin=[name])
    for vi in gp.output:
        if vi.name not in g.values:
            raise TensorforgeError(f"graph output '{vi.name}' is never produced")
        g.outputs.append(g.values[vi.name])
    return g


def _constant_value(attrs, name) -> torch.Tensor:
    if "value" in attrs:
        return attrs["value"]
    for key, dt in (("value_float", torch.float32), ("value_floats", torch.float32),
                    ("value_int", torch.int64), ("value_ints", torch.int64)):
        if key in attrs:
            return torch.tensor(attrs[key], dtype=dt)
    raise TensorforgeError(f"Constant node '{name}': unsupported value kind {sorted(attrs)}")


def check_names(graph: onnx.GraphProto, where: str = "graph") -> None:
    """Every name of the graph (and of its bodies) is text: protobuf hands back a string field that
    is not valid UTF-8 (a corrupt file) as bytes, which no later step expects."""
    def bad(s) -> bool:
        return isinstance(s, bytes)
    for kind, items in (("input", graph.input), ("output", graph.output), ("value_info", graph.value_info),
                        ("initializer", graph.initializer)):
        for k, v in enumerate(items):
            if bad(v.name):
                raise TensorforgeError(f"{where}: {kind} {k} has a name that is not valid UTF-8 ({v.name[:40]!r})")
    for k, n in enumerate(graph.node):
        fields = [n.name, n.op_type, n.domain, *n.input, *n.output, *(a.name for a in n.attribute)]
        if any(bad(s) for s in fields):
            raise TensorforgeError(f"{where}: node {k} ({n.op_type!r}) has a name or field that is not valid UTF-8")
        for a in n.attribute:
            for body in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
                check_names(body, f"{where} / node {k} body '{a.name}'")
