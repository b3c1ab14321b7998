"""Bias correction after weight quantization (Nagel et al. 2019, "Data-Free Quantization", §4.2, with
empirical input means): the rounding error of a layer's INT8/FP8 weights shifts the mean of its output
by (W_q - W) . E[x]; subtracting that from the bias removes the shift. E[x] is the per-channel mean of
the layer's (dequantized) input in the Q/DQ model itself, over the calibration batches."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from . import ortrun


def _attr(node, name, default):
    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def _dequantized_weight(prod, inits, name):
    """(float weight, its quantize-dequantized value) of a constant weight behind Q -> DQ, else None."""
    dq = prod.get(name)
    if dq is None or dq.op_type != "DequantizeLinear":
        return None
    q = prod.get(dq.input[0])
    if q is None or q.op_type != "QuantizeLinear" or q.input[0] not in inits or q.input[1] not in inits:
        return None  # a DQ-only weight keeps no float copy to compare with
    w = numpy_helper.to_array(inits[q.input[0]]).astype(np.float32)
    s = numpy_helper.to_array(inits[q.input[1]]).astype(np.float32)
    shp = [1] * w.ndim
    if s.size > 1:
        shp[_attr(q, "axis", 1)] = -1
    s = s.reshape(shp)
    fp8 = len(q.input) > 2 and q.input[2] in inits and inits[q.input[2]].data_type == onnx.TensorProto.FLOAT8E4M3FN
    if fp8:
        import torch
        wq = torch.from_numpy(w / s).clamp(-448, 448).to(torch.float8_e4m3fn).float().numpy() * s
    else:
        wq = np.clip(np.round(w / s), -127, 127) * s
    return w, wq


def _input_means(model, tensors, feeds) -> dict:
    """Per-channel (dim 1) means of `tensors` over the feeds (ONNX Runtime, CPU)."""
    sess = ortrun.session(model, tensors, basic=True)
    acc, count = {t: 0.0 for t in tensors}, {t: 0 for t in tensors}
    for feed in feeds:
        for t, v in zip(tensors, ortrun.run(sess, tensors, feed)):
            v = np.asarray(v, np.float64)
            flat = v.reshape(v.shape[0], v.shape[1], -1) if v.ndim > 2 else v.reshape(-1, v.shape[-1])[:, :, None]
            acc[t] = acc[t] + flat.sum((0, 2))
            count[t] += flat.shape[0] * flat.shape[2]
    return {t: acc[t] / max(count[t], 1) for t in tensors}


def bias_correct(model, feeds) -> onnx.ModelProto:
    """A copy of the (float32) Q/DQ model whose Conv / Gemm biases absorb their weights' quantization error."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    inits = {i.name: i for i in g.initializer}
    prod = {o: n for n in g.node for o in n.output}
    todo = []
    for n in g.node:
        if n.op_type not in ("Conv", "Gemm") or len(n.input) < 3 or n.input[2] not in inits:
            continue
        if n.op_type == "Gemm" and _attr(n, "transA", 0):
            continue
        wq = _dequantized_weight(prod, inits, n.input[1])
        if wq is not None:
            todo.append((n, wq[1] - wq[0]))
    if not todo:
        return out
    mu = _input_means(out, list(dict.fromkeys(n.input[0] for n, _ in todo)), feeds)
    for n, dw in todo:
        m = mu[n.input[0]]
        if n.op_type == "Conv":
            grp = _attr(n, "group", 1)
            oc, icg = dw.shape[:2]
            per = dw.reshape(grp, oc // grp, icg, -1).sum(3)  # [group, oc/group, ic/group]
            delta = np.einsum("goi,gi->go", per, m.reshape(grp, icg)).reshape(oc)
        else:
            delta = (dw if _attr(n, "transB", 0) else dw.T) @ m
        b = numpy_helper.to_array(inits[n.input[2]])
        inits[n.input[2]].CopyFrom(numpy_helper.from_array((b - delta).astype(b.dtype), n.input[2]))
    return out
