"""ONNX model mutations: each takes (model, rng), edits the model in place, returns False if it does not apply."""
from __future__ import annotations

import onnx
from onnx import TensorProto, helper


def _pick(rng, seq):
    return seq[int(rng.integers(0, len(seq)))] if len(seq) else None


def _real_inputs(m):
    inits = {i.name for i in m.graph.initializer}
    return [i for i in m.graph.input if i.name not in inits]


def _dim(m, rng, value):
    vi = _pick(rng, _real_inputs(m))
    if vi is None or not vi.type.tensor_type.shape.dim:
        return False
    d = _pick(rng, list(vi.type.tensor_type.shape.dim))
    d.Clear()
    d.dim_value = value
    return True


def _init(m, rng, pred=lambda t: True):
    return _pick(rng, [t for t in m.graph.initializer if pred(t)])


def m_dim_huge(m, rng):
    return _dim(m, rng, 2**40)


def m_dim_overflow(m, rng):
    vi = _pick(rng, _real_inputs(m))
    if vi is None or len(vi.type.tensor_type.shape.dim) < 2:
        return False
    for d in vi.type.tensor_type.shape.dim:
        d.Clear()
        d.dim_value = 2**62
    return True


def m_dim_negative(m, rng):
    return _dim(m, rng, -5)


def m_rank_change(m, rng):
    vi = _pick(rng, _real_inputs(m))
    if vi is None or not vi.type.tensor_type.shape.dim:
        return False
    del vi.type.tensor_type.shape.dim[-1]
    return True


def m_elem_unknown(m, rng):
    vi = _pick(rng, _real_inputs(m) + list(m.graph.output))
    vi.type.tensor_type.elem_type = int(_pick(rng, [99, 0, 8, 40]))
    return True


def m_init_dims_mismatch(m, rng):
    t = _init(m, rng, lambda t: len(t.dims) > 0)
    if t is None:
        return False
    t.dims[0] = t.dims[0] * 3 + 1
    return True


def m_init_dims_overflow(m, rng):
    t = _init(m, rng)
    if t is None:
        return False
    del t.dims[:]
    t.dims.extend([2**62, 2**62, 16])
    return True


def m_raw_cut(m, rng):
    t = _init(m, rng, lambda t: len(t.raw_data) > 4)
    if t is None:
        return False
    t.raw_data = t.raw_data[:len(t.raw_data) // 2 + 1]
    return True


def m_init_dtype_change(m, rng):
    t = _init(m, rng, lambda t: t.data_type == TensorProto.FLOAT and len(t.raw_data) > 0)
    if t is None:
        return False
    t.data_type = TensorProto.DOUBLE
    return True


def m_init_dtype_unknown(m, rng):
    t = _init(m, rng)
    if t is None:
        return False
    t.data_type = int(_pick(rng, [99, 0, 8]))
    return True


def m_attr_kind(m, rng):
    nodes = [n for n in m.graph.node if n.attribute]
    n = _pick(rng, nodes)
    if n is None:
        return False
    a = _pick(rng, list(n.attribute))
    name = a.name
    n.attribute.remove(a)
    n.attribute.append(_pick(rng, [helper.make_attribute(name, "zz"), helper.make_attribute(name, [1.5, 2.5]),
                                   helper.make_attribute(name, 3.25), helper.make_attribute(name, [b"a", b"b"]),
                                   helper.make_attribute(name, 2**40)]))
    return True


def m_attr_remove(m, rng):
    n = _pick(rng, [n for n in m.graph.node if n.attribute])
    if n is None:
        return False
    del n.attribute[:]
    return True


def m_attr_extreme(m, rng):
    n = _pick(rng, [n for n in m.graph.node if any(a.type == onnx.AttributeProto.INTS for a in n.attribute)])
    if n is None:
        return False
    a = _pick(rng, [a for a in n.attribute if a.type == onnx.AttributeProto.INTS])
    vals = [int(_pick(rng, [-(2**40), 2**40, -1, 0])) for _ in a.ints]
    del a.ints[:]
    a.ints.extend(vals)
    return True


def m_dangling_input(m, rng):
    n = _pick(rng, [n for n in m.graph.node if n.input])
    n.input[0] = "no_such_value_anywhere"
    return True


def m_cycle(m, rng):
    if len(m.graph.node) < 2:
        n = m.graph.node[0]
        n.input[0] = n.output[0]
        return True
    i = int(rng.integers(0, len(m.graph.node) - 1))
    j = int(rng.integers(i + 1, len(m.graph.node)))
    m.graph.node[i].input[0] = m.graph.node[j].output[0]
    return True


def m_duplicate_output(m, rng):
    if len(m.graph.node) < 2:
        return False
    a, b = m.graph.node[0], m.graph.node[1]
    b.output[0] = a.output[0]
    return True


def m_duplicate_initializer(m, rng):
    t = _init(m, rng)
    if t is None:
        return False
    t2 = m.graph.initializer.add()
    t2.CopyFrom(t)
    t2.dims.append(1)
    return True


def m_drop_node(m, rng):
    if len(m.graph.node) < 2:
        return False
    del m.graph.node[int(rng.integers(0, len(m.graph.node) - 1))]
    return True


def m_unknown_op(m, rng):
    _pick(rng, list(m.graph.node)).op_type = "NoSuchOpAtAll"
    return True


def m_opset(m, rng):
    for o in m.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = int(_pick(rng, [1, 999, -3]))
    return True


def m_output_unproduced(m, rng):
    m.graph.output[0].name = "never_made"
    return True


def m_external_bogus(m, rng):
    t = _init(m, rng, lambda t: len(t.raw_data) > 0)
    if t is None:
        return False
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    loc = _pick(rng, ["/etc/passwd", "../../../../etc/hostname", "missing.bin", "/dev/zero"])
    t.external_data.extend([onnx.StringStringEntryProto(key="location", value=loc),
                            onnx.StringStringEntryProto(key="length", value=str(2**40))])
    return True


def m_reshape_target_huge(m, rng):
    t = _init(m, rng, lambda t: t.data_type == TensorProto.INT64 and len(t.dims) == 1)
    if t is None:
        return False
    n = t.dims[0] if t.dims else 1
    t.ClearField("raw_data")
    del t.int64_data[:]
    t.int64_data.extend([2**40] * n)
    return True


def m_input_no_shape(m, rng):
    vi = _pick(rng, _real_inputs(m))
    if vi is None:
        return False
    vi.type.tensor_type.ClearField("shape")
    return True


def m_remove_node_input(m, rng):
    n = _pick(rng, [n for n in m.graph.node if len(n.input) > 1])
    if n is None:
        return False
    del n.input[1:]
    return True


def m_empty_graph(m, rng):
    del m.graph.node[:]
    return True


# kind -> (mutation, must_fail): must_fail marks inputs no correct tool may accept
MUTATIONS = {
    "dim_huge": (m_dim_huge, False), "dim_overflow": (m_dim_overflow, True), "dim_negative": (m_dim_negative, False),
    "rank_change": (m_rank_change, False), "elem_type_unknown": (m_elem_unknown, False),
    "init_dims_mismatch": (m_init_dims_mismatch, True), "init_dims_overflow": (m_init_dims_overflow, True),
    "raw_data_cut": (m_raw_cut, True), "init_dtype_change": (m_init_dtype_change, False),
    "init_dtype_unknown": (m_init_dtype_unknown, True), "attr_kind": (m_attr_kind, False),
    "attr_remove": (m_attr_remove, False), "attr_extreme": (m_attr_extreme, False),
    "dangling_input": (m_dangling_input, True), "cycle": (m_cycle, True),
    "duplicate_output": (m_duplicate_output, False), "duplicate_initializer": (m_duplicate_initializer, False),
    "drop_node": (m_drop_node, False), "unknown_op": (m_unknown_op, True), "opset": (m_opset, False),
    "output_unproduced": (m_output_unproduced, True), "external_bogus": (m_external_bogus, True),
    "reshape_target_huge": (m_reshape_target_huge, False), "input_no_shape": (m_input_no_shape, False),
    "remove_node_input": (m_remove_node_input, False), "empty_graph": (m_empty_graph, False),
}
