"""The quantization rule tables (data): which ops commute with Q / DQ, which are quantizable,
which are weighted (and where their weight and its per-channel axis are)."""
from __future__ import annotations

# op(DQ(x)) == DQ(op(x)) for a per-tensor DQ: data movement and max-selection (order-preserving)
COMMUTES_WITH_DQ = frozenset(("Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Slice",
                              "MaxPool", "Concat", "Pad", "Identity"))
# Q(op(x)) == op(Q(x)): the same ops (Concat only with one scale on every input, Pad with value 0)
COMMUTES_WITH_Q = frozenset(("Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Slice",
                             "MaxPool", "Identity"))
# non-weighted, non-pointwise layers that run in low precision when fed by DQs and followed by a
# Q: one fused.QOp (TensorRT fuses "DQ -> AvgPool -> Q" into an INT8 AvgPool)
QUANTIZABLE = frozenset(("AveragePool", "GlobalAveragePool", "ReduceMean", "GlobalMaxPool"))
# pointwise quantizable layers (Add, Mul, activations): their input DQs and output Q are lowered to
# pointwise expressions (lower.py) and fuse with them into one layer with quantized inputs/outputs
QUANTIZABLE_POINTWISE = frozenset(("Add", "Mul", "Sub", "Sigmoid", "HardSigmoid", "HardSwish", "Relu",
                                   "BatchNormalization", "Clip", "LeakyRelu"))
# weighted op -> (fused quantized op, weight input index, output-channel axis of the weight per
# the op's attributes); a GEMM's axis depends on transB (PyTorch Linear: (N, K) -> axis 0)
WEIGHTED = {"Conv": "fused.QConv", "Gemm": "fused.QGemm", "MatMul": "fused.QMatMul"}
QUANTIZED_LAYERS = frozenset(WEIGHTED.values()) | {"fused.QOp"}


def weight_axis(node) -> int:
    """The weight dim that indexes output channels."""
    if node.op == "Conv":
        return 0
    if node.op == "Gemm":
        return 0 if node.attrs.get("transB", 0) else 1
    w = node.inputs[1]
    return len(w.shape) - 1


def keeps_dequantize(node) -> bool:
    """A DQ of a constant that only feeds weight inputs of weighted ops stays unfolded (the weight
    keeps its quantized form for the fused quantized layer)."""
    if node.op != "DequantizeLinear" or node.inputs[0].const is None:
        return False
    users = node.outputs[0].users
    return bool(users) and all(u.op in WEIGHTED and len(u.inputs) > 1 and u.inputs[1] is node.outputs[0]
                               and u.inputs[0] is not node.outputs[0] for u in users)
