"""The quantized model's high-precision part in FP16 / BF16, as ModelOpt writes it
(`high_precision_dtype`): every float32 tensor (unquantized weights, Q/DQ scales, activations)
becomes the low type, so a DequantizeLinear outputs the low type (its output follows the scale's);
float32 graph inputs and outputs keep their type behind one Cast each (keep_io_types)."""
from __future__ import annotations

import logging

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

log = logging.getLogger("tensorforge")
LOW = {"fp16": TensorProto.FLOAT16, "bf16": TensorProto.BFLOAT16}
MIN_OPSET = 19  # float16 / bfloat16 Q/DQ scales
# inputs that keep float32 whatever the node's type (ModelOpt: Resize scales)
KEEP_FP32 = {"Resize": (2,)}
# ops that run in float32 (no low-precision form), behind Casts (ModelOpt's list)
BLOCKED = ("Upsample", "NonMaxSuppression", "Celu")


def _limits(to: int):
    if to == TensorProto.FLOAT16:
        fi = np.finfo(np.float16)
        return float(fi.max), float(fi.smallest_subnormal)
    return 3.3895313892515355e38, 9.183549615799121e-41  # bfloat16 max / smallest subnormal


def convert_array(a: np.ndarray, to: int, name: str) -> onnx.TensorProto:
    """A float32 array as a `to` initializer: out-of-range values clamped, tiny nonzero ones kept
    at the smallest subnormal (as ModelOpt converts initializers)."""
    big, tiny = _limits(to)
    a = np.asarray(a, np.float32)
    fin = np.isfinite(a)
    a = np.where(fin, np.clip(a, -big, big), a)
    small = fin & (a != 0) & (np.abs(a) < tiny)
    a = np.where(small, np.sign(a) * tiny, a).astype(np.float32)
    if to == TensorProto.FLOAT16:
        return numpy_helper.from_array(a.astype(np.float16), name)
    bits = (a.view(np.uint32) + 0x7FFF + ((a.view(np.uint32) >> 16) & 1)) >> 16  # round to nearest even
    t = helper.make_tensor(name, TensorProto.BFLOAT16, list(a.shape), bits.astype(np.uint16).tobytes(), raw=True)
    return t


def _fp32(t) -> bool:
    return t.type.tensor_type.elem_type == TensorProto.FLOAT


def to_high_precision(model, dtype: str = "fp16"):
    """A copy of a (Q/DQ) model with its float32 part in `dtype` (fp16 | bf16); fp32: unchanged."""
    if dtype == "fp32":
        return model
    to = LOW[dtype]
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in g.node for a in n.attribute):
        log.warning("quantize: the model has control-flow subgraphs; its high-precision part stays float32")
        return model
    m = onnx.shape_inference.infer_shapes(m)
    g = m.graph
    f32 = {v.name for v in list(g.value_info) + list(g.input) + list(g.output) if _fp32(v)}
    inits = {i.name for i in g.initializer}
    keep = {n.input[k] for n in g.node for k in KEEP_FP32.get(n.op_type, ()) if k < len(n.input)}
    keep |= {x for n in g.node if n.op_type in BLOCKED for x in n.input} | {o.name for o in g.output}
    for i, t in enumerate(g.initializer):
        if t.data_type == TensorProto.FLOAT and t.name not in keep:
            g.initializer[i].CopyFrom(convert_array(numpy_helper.to_array(t), to, t.name))
    nodes = []
    for n in g.node:
        if n.op_type in BLOCKED:
            nodes += _blocked(n, f32, to)
            continue
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value" and \
                n.attribute[0].t.data_type == TensorProto.FLOAT and n.output[0] not in keep:
            n.attribute[0].t.CopyFrom(convert_array(numpy_helper.to_array(n.attribute[0].t), to, n.attribute[0].t.name))
        for a in n.attribute:
            if n.op_type in ("Cast", "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                             "EyeLike") and a.name in ("to", "dtype") and a.i == TensorProto.FLOAT:
                a.i = to
            if n.op_type == "ConstantOfShape" and a.name == "value" and a.t.data_type == TensorProto.FLOAT:
                a.t.CopyFrom(convert_array(numpy_helper.to_array(a.t), to, a.t.name))
        nodes.append(n)
    ins = [i for i in g.input if _fp32(i) and i.name not in inits]
    head = []
    for i in ins:  # keep_io_types: the graph input stays float32, one Cast feeds the model
        low = f"{i.name}_{dtype}"
        for n in nodes:
            for k, x in enumerate(n.input):
                if x == i.name and not (n.op_type in BLOCKED or (n.op_type in KEEP_FP32 and k in KEEP_FP32[n.op_type])):
                    n.input[k] = low
        head.append(helper.make_node("Cast", [i.name], [low], name=f"{i.name}_cast_to_{dtype}", to=to))
    tail = []
    for o in g.output:
        if not _fp32(o):
            continue
        low = f"{o.name}_{dtype}"
        if not any(o.name in n.output for n in nodes):  # an input or a constant passed straight through
            continue
        for n in nodes:
            n.output[:] = [low if x == o.name else x for x in n.output]
            n.input[:] = [low if x == o.name else x for x in n.input]
        tail.append(helper.make_node("Cast", [low], [o.name], name=f"{o.name}_cast_to_fp32", to=TensorProto.FLOAT))
    del g.node[:]
    g.node.extend(head + nodes + tail)
    del g.value_info[:]
    return m


def _blocked(n, f32, to):
    """A node that runs in float32: its float inputs cast up, its float outputs cast back down."""
    up, down = [], []
    for k, x in enumerate(n.input):
        if x and x in f32:
            up.append(helper.make_node("Cast", [x], [f"{x}_fp32_{n.name}"], name=f"{n.name}_in{k}_to_fp32",
                                       to=TensorProto.FLOAT))
            n.input[k] = f"{x}_fp32_{n.name}"
    for k, y in enumerate(n.output):
        if y in f32:
            down.append(helper.make_node("Cast", [f"{y}_fp32"], [y], name=f"{n.name}_out{k}_to_low", to=to))
            n.output[k] = f"{y}_fp32"
    return up + [n] + down
