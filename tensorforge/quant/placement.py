"""Default Q/DQ placement as ModelOpt's: the activation inputs and weights of Conv/Gemm/MatMul
with constant weights (not tiny GEMMs), and the skip input of residual Adds; LayerNorm, GELU and
Softmax chains stay in high precision because nothing there is a quantized input."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
from onnx import numpy_helper

# A conv with fewer input channels (an image network's stem: 3) stays in high precision: an 8-bit
# MMA's K block (32) would be mostly padding. Session 9 on the H200, ResNet-50 at bs 128: its INT8
# stem took 3.03 ms as the Triton qconv and 2.90 ms as the FP16 form, vs 0.33 ms in the FP16 engine.
MIN_CONV_CIN = 8
MIN_GEMM_DIM = 16  # ModelOpt: "adding Q/DQ layers on smaller GEMMs causes TRT perf regressions"
PASS_THROUGH = ("BatchNormalization", "Relu", "Clip", "HardSwish", "HardSigmoid", "Sigmoid", "Mul", "Add", "Div",
                "Identity", "LeakyRelu", "Tanh", "Sub")


@dataclass
class Plan:
    """What to quantize: activation (tensor, consumer node index, input index) and weighted nodes."""
    acts: list = field(default_factory=list)     # (tensor name, node index, input index)
    weights: list = field(default_factory=list)  # (node index, weight axis)
    skipped: dict = field(default_factory=dict)  # node name -> reason


class Graph:
    """Producer / consumer / constant lookups over an onnx GraphProto."""

    def __init__(self, model):
        g = model.graph
        self.nodes = list(g.node)
        self.consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        for n in self.nodes:
            if n.op_type == "Constant" and n.attribute:
                from onnx import helper
                v = helper.get_attribute_value(n.attribute[0])
                if hasattr(v, "dims"):
                    self.consts[n.output[0]] = numpy_helper.to_array(v)
        self.producer = {o: n for n in self.nodes for o in n.output}
        self.inputs = {i.name for i in g.input} - set(self.consts)
        self.shapes = {}
        for vi in list(g.value_info) + list(g.input) + list(g.output):
            dims = vi.type.tensor_type.shape.dim
            self.shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]


def weight_axis(node) -> int:
    if node.op_type == "Conv":
        return 0
    if node.op_type == "Gemm":
        return 0 if any(a.name == "transB" and a.i for a in node.attribute) else 1
    return 1


def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            from onnx import helper
            return helper.get_attribute_value(a)
    return default


def _why_not(g: Graph, n, mode: str):
    """Why a weighted node stays in high precision (None: quantize it)."""
    w = g.consts.get(n.input[1]) if len(n.input) > 1 else None
    if w is None:
        return "the weight is not constant"
    if n.op_type == "Conv":
        oc, icg = w.shape[0], w.shape[1]
        kvol = int(np.prod(w.shape[2:]))
        if mode == "fp8" and (kvol > 32 or min(oc, icg * _attr(n, "group", 1)) <= 16):
            return "FP8 conv with a large kernel or few channels (slower than FP16)"
        if icg * _attr(n, "group", 1) < MIN_CONV_CIN:
            return f"conv with fewer than {MIN_CONV_CIN} input channels (an 8-bit K block would be mostly padding)"
        return None
    if w.ndim != 2:
        return "the weight is not 2-D"
    k, nn = (w.shape[::-1] if n.op_type == "Gemm" and _attr(n, "transB", 0) else w.shape)
    if min(k, nn) < MIN_GEMM_DIM:
        return f"tiny GEMM (K or N < {MIN_GEMM_DIM})"
    shp = g.shapes.get(n.input[0])
    if shp and len(shp) >= 2 and shp[-2] == 1 and all(d == 1 for d in shp[:-1] if d is not None):
        return "GEMV (M = 1)"
    return None


def _backbone(g: Graph, name: str, depth: int = 6) -> bool:
    """Whether `name` comes from a Conv/Gemm/MatMul through single-input pointwise/BN nodes."""
    for _ in range(depth):
        p = g.producer.get(name)
        if p is None:
            return False
        if p.op_type in ("Conv", "Gemm", "MatMul"):
            return True
        if p.op_type not in PASS_THROUGH:
            return False
        live = [i for i in p.input if i and i not in g.consts]
        if len(live) != 1:  # a join (another residual Add): not this branch's backbone
            return False
        name = live[0]
    return False


def _depth_to_fork(g: Graph, name: str, limit: int = 64) -> int:
    """Nodes between `name` and the closest tensor several nodes read (the residual fork)."""
    users = {}
    for n in g.nodes:
        for i in n.input:
            users[i] = users.get(i, 0) + 1
    d = 0
    while d < limit:
        p = g.producer.get(name)
        if p is None:
            return d
        live = [i for i in p.input if i and i not in g.consts]
        if not live:
            return d
        name = live[0]
        d += 1
        if users.get(name, 0) > 1:
            return d
    return d


def _match(pats, node) -> bool:
    return any(re.fullmatch(p, node.name or "") or re.fullmatch(p, node.op_type) for p in pats)


def place(model, mode: str = "int8", include=(), exclude=(), only_tensors=None) -> Plan:
    """The quantization plan of a model (include/exclude: regexes over node names or op types;
    only_tensors: quantize only nodes whose activation input is in this set, as for a cache)."""
    g = Graph(model)
    plan = Plan()
    quantized = set()
    for i, n in enumerate(g.nodes):
        if n.op_type not in ("Conv", "Gemm", "MatMul"):
            continue
        why = _why_not(g, n, mode)
        if exclude and _match(exclude, n):
            why = "excluded by pattern"
        if include and not _match(include, n):
            why = "not included by pattern"
        if why is None and only_tensors is not None and n.input[0] not in only_tensors:
            why = "its input is not in the calibration cache"
        if why is not None:
            plan.skipped[n.name or f"node{i}"] = why
            continue
        plan.acts.append((n.input[0], i, 0))
        plan.weights.append((i, weight_axis(n)))
        quantized.add(i)
    for i, n in enumerate(g.nodes):  # residual Adds: quantize the skip input (TensorRT recommendation 4)
        if n.op_type != "Add" or any(x in g.consts for x in n.input) or len(n.input) != 2:
            continue
        if exclude and _match(exclude, n):
            continue
        a, b = (_backbone(g, x) for x in n.input)
        if not (a or b):
            continue
        if a and b:  # both from convs (a downsample block): the shorter path to the fork is the skip
            skip = min(n.input, key=lambda x: _depth_to_fork(g, x))
        else:
            skip = n.input[1] if a else n.input[0]
        if only_tensors is None or skip in only_tensors:
            plan.acts.append((skip, i, list(n.input).index(skip)))
    return plan
