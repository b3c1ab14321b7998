"""Small Q/DQ models for the quantization tests (ModelOpt style: symmetric int8 / fp8)."""
from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from .util import init, model, randn

I8, U8, F8 = TensorProto.INT8, TensorProto.UINT8, TensorProto.FLOAT8E4M3FN


def qdq(x, name, scale, zp=None, dt=I8, axis=None, inits=None, block=None):
    """Q -> DQ nodes on x (returns (nodes, output name)); scale/zp are stored as initializers."""
    s = np.asarray(scale, np.float32)
    inits.append(init(f"{name}_s", s))
    ins = [f"{name}_s"]
    if dt != F8 or zp is not None:
        z = np.zeros(s.shape, {I8: np.int8, U8: np.uint8}.get(dt, np.int8)) if zp is None else zp
        if dt == F8:
            inits.append(helper.make_tensor(f"{name}_z", F8, list(s.shape), np.zeros(s.size).tolist()))
        else:
            inits.append(init(f"{name}_z", np.asarray(z, {I8: np.int8, U8: np.uint8}[dt])))
        ins.append(f"{name}_z")
    attrs = {} if axis is None else {"axis": axis}
    if block:
        attrs["block_size"] = block
    qattrs = dict(attrs)
    if dt == F8 and len(ins) == 1:
        qattrs["output_dtype"] = F8
    return [("QuantizeLinear", [x] + ins, [f"{name}_q"], qattrs, f"{name}_Q"),
            ("DequantizeLinear", [f"{name}_q"] + ins, [f"{name}_dq"], attrs, f"{name}_DQ")], f"{name}_dq"


def conv_block(dt=I8, residual=False, out_q=False, relu=True, bn=True, seed=0):
    """x -> Q/DQ -> Conv(Q/DQ w per channel) [-> BN] [-> Relu] [+ Q/DQ(x)] [-> Q/DQ] -> y."""
    inits = []
    w = randn((8, 8, 3, 3), seed, -0.5, 0.5)
    inits.append(init("w", w))
    inits.append(init("b", randn((8,), seed + 1)))
    nodes, xd = qdq("x", "xq", 0.02, dt=dt, inits=inits)
    wn, wd = qdq("w", "wq", np.abs(w).reshape(8, -1).max(1) / (127 if dt != F8 else 448), dt=dt, axis=0,
                 inits=inits)
    nodes += wn + [("Conv", [xd, wd, "b"], ["c"], {"pads": [1, 1, 1, 1]}, "conv")]
    y = "c"
    if bn:
        for k, v in zip(("g", "beta", "mu", "var"), (randn((8,), 3, 0.5, 1.5), randn((8,), 4), randn((8,), 5),
                                                     randn((8,), 6, 0.5, 2))):
            inits.append(init(k, v))
        nodes.append(("BatchNormalization", [y, "g", "beta", "mu", "var"], ["bn"], {}, "bn"))
        y = "bn"
    if residual:
        nodes.append(("Add", [y, xd], ["res"], {}, "add"))
        y = "res"
    if relu:
        nodes.append(("Relu", [y], ["r"], {}, "relu"))
        y = "r"
    if out_q:
        qn, y = qdq(y, "yq", 0.05, dt=dt, inits=inits)
        nodes += qn
    nodes.append(("Identity", [y], ["y"], {}, "out"))
    return model(nodes, [("x", [2, 8, 6, 6])], ["y"], inits, opset=19 if dt == F8 else 17)
