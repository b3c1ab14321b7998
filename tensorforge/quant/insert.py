"""Writing the Q/DQ model: Q -> DQ on chosen activations (per tensor) and weights (per channel)."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .placement import Graph

QMAX = {"int8": 127.0, "fp8": 448.0}
QTYPE = {"int8": TensorProto.INT8, "fp8": TensorProto.FLOAT8E4M3FN}


def _zero(name, mode, shape=()):
    if mode == "fp8":
        return helper.make_tensor(name, TensorProto.FLOAT8E4M3FN, list(shape), [0.0] * int(np.prod(shape or [1])))
    return numpy_helper.from_array(np.zeros(shape, np.int8), name)


def _qdq_nodes(src, base, scale_name, zp_name, axis=None):
    attrs = {} if axis is None else {"axis": axis}
    q = helper.make_node("QuantizeLinear", [src, scale_name, zp_name], [f"{base}_quantized"], name=f"{base}_QuantizeLinear",
                         **attrs)
    dq = helper.make_node("DequantizeLinear", [f"{base}_quantized", scale_name, zp_name], [f"{base}_dequantized"],
                          name=f"{base}_DequantizeLinear", **attrs)
    return [q, dq], f"{base}_dequantized"


def weight_scales(w: np.ndarray, axis: int | None, mode: str) -> np.ndarray:
    """Symmetric scales: per channel (max |w| over every dim but `axis`, / qmax), or one for the
    whole tensor (axis None)."""
    if axis is None:
        return np.array(max(float(np.abs(w).max()) / QMAX[mode], 1e-12), np.float32)
    red = tuple(d for d in range(w.ndim) if d != axis)
    amax = np.abs(w).max(axis=red) if red else np.abs(w)
    return np.maximum(amax / QMAX[mode], 1e-12).astype(np.float32)


def share_sibling_scales(nodes, scales: dict) -> None:
    """Per-tensor weight scales of sibling MatMul / Gemm nodes (one quantized activation read by several, as
    BERT's Q, K and V projections) set to the largest of them, in place. The builder merges such siblings
    into one GEMM (passes.merge_gemm): with one scale the merged weight stays per tensor, which cuBLASLt's
    FP8 GEMM needs on Hopper; with three it would be per channel and run as the Triton qgemm. ModelOpt's
    TensorRT-LLM export does the same for fused QKV weights (the max of the three amaxes). For e4m3 weights
    a larger scale costs little: values keep their 3 mantissa bits until they reach the subnormals."""
    groups: dict = {}
    for idx in scales:
        n = nodes[idx]
        if n.op_type in ("MatMul", "Gemm") and n.input and scales[idx].ndim == 0:
            groups.setdefault((n.op_type, n.input[0]), []).append(idx)
    for members in groups.values():
        if len(members) > 1:
            top = max(float(scales[i]) for i in members)
            for i in members:
                scales[i] = np.array(top, np.float32)


def insert_qdq(model, plan, amax: dict, mode: str = "int8", dq_only: bool = False, per_tensor_weights: bool = False):
    """A copy of `model` with Q/DQ per the plan; activation scales amax[tensor] / qmax; weight scales
    per output channel, or one per weight (per_tensor_weights)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    nodes = list(g.node)
    inits = {i.name: i for i in g.initializer}
    consts = Graph(model).consts  # initializers and Constant node outputs
    new_inits, before = [], {}  # before[node index] = Q/DQ nodes to insert ahead of it
    made = {}
    for tensor, idx, k in plan.acts:
        if tensor not in amax:
            continue
        if tensor not in made:
            s = max(float(amax[tensor]), 1e-12) / QMAX[mode]
            new_inits += [numpy_helper.from_array(np.array(s, np.float32), f"{tensor}_scale"), _zero(f"{tensor}_zp", mode)]
            qdq, out = _qdq_nodes(tensor, tensor, f"{tensor}_scale", f"{tensor}_zp")
            made[tensor] = out
            before.setdefault(idx, []).extend(qdq)  # _topo moves it after the tensor's producer
        nodes[idx].input[k] = made[tensor]
    scales = {idx: weight_scales(np.asarray(consts[nodes[idx].input[1]], np.float32),
                                 None if per_tensor_weights else axis, mode) for idx, axis in plan.weights}
    if per_tensor_weights:
        share_sibling_scales(nodes, scales)
    for idx, axis in plan.weights:
        n = nodes[idx]
        wname = n.input[1]
        w = np.asarray(consts[wname], np.float32)
        s = scales[idx]
        base = f"{wname}_w"
        new_inits += [numpy_helper.from_array(s, f"{base}_scale"), _zero(f"{base}_zp", mode, s.shape)]
        if dq_only:
            shp = [1] * w.ndim
            shp[axis] = -1
            sv = s.reshape(shp) if s.ndim else s
            q = np.clip(np.round(w / sv), -127, 127).astype(np.int8) if mode == "int8" else None
            if q is None:
                import torch
                q_t = (torch.from_numpy(w) / torch.from_numpy(np.asarray(sv))).clamp(-448, 448).to(torch.float8_e4m3fn)
                qi = helper.make_tensor(f"{base}_q", TensorProto.FLOAT8E4M3FN, list(w.shape),
                                        q_t.view(torch.uint8).numpy().tobytes(), raw=True)
            else:
                qi = numpy_helper.from_array(q, f"{base}_q")
            new_inits.append(qi)
            dq = helper.make_node("DequantizeLinear", [f"{base}_q", f"{base}_scale", f"{base}_zp"], [f"{base}_dequantized"],
                                  name=f"{base}_DequantizeLinear", **({"axis": axis} if s.ndim else {}))
            before.setdefault(idx, []).append(dq)
            n.input[1] = f"{base}_dequantized"
        else:
            qdq, out = _qdq_nodes(wname, base, f"{base}_scale", f"{base}_zp", axis=axis if s.ndim else None)
            before.setdefault(idx, []).extend(qdq)
            n.input[1] = out
    out_nodes = []
    for i, n in enumerate(nodes):
        out_nodes += before.get(i, []) + [n]
    del g.node[:]
    g.node.extend(_topo(out_nodes, {i.name for i in g.input} | set(inits) | {t.name for t in new_inits}))
    g.initializer.extend(new_inits)
    return m


def _topo(nodes, available):
    """Nodes in an order where every input is produced first (Q/DQ of a tensor after its producer)."""
    avail, done, out = set(available) | {""}, set(), []
    pending = list(nodes)
    while pending:
        rest = []
        for n in pending:
            if all(i in avail for i in n.input):
                out.append(n)
                avail.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):  # inputs from outside (subgraphs): keep the remaining order
            out += rest
            break
        pending = rest
    return out
