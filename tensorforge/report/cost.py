"""FLOPs and bytes per layer from its tensor shapes: the work a layer cannot avoid.

Bytes are every input and output read or written once (weights included). FLOPs (multiply-adds
count 2) only for the tensor-core families: conv, GEMM/MatMul, attention; other layers are
bandwidth work and get 0 FLOPs."""
from __future__ import annotations

import math

ITEMSIZE = {"FP32": 4, "FP16": 2, "BF16": 2, "Int8": 1, "Int32": 4, "Int64": 8, "Bool": 1, "UInt8": 1,
            "FP8": 1, "FP64": 8}
CONV = ("Conv", "fused.ConvAct")
CONV_T = ("ConvTranspose",)
GEMM = ("Gemm", "fused.GemmAct")
MATMUL = ("MatMul", "fused.MatMulAct", "Einsum")
ATTENTION = ("fused.Attention",)
TENSOR_CORE = CONV + CONV_T + GEMM + MATMUL + ATTENTION


def dims(t: dict):
    """A tensor entry's dims as a tuple of ints, or None when unknown or dynamic."""
    d = t.get("Dimensions")
    if not isinstance(d, list) or any(not isinstance(x, int) or x < 0 for x in d):
        return None
    return tuple(d)


def numel(shape) -> int:
    """Number of elements of a shape."""
    return math.prod(shape) if shape is not None else 0


def dtype_of(t: dict) -> str:
    """The datatype word of a `Format/Datatype` entry (e.g. 'FP16')."""
    fmt = str(t.get("Format/Datatype", ""))
    word = fmt.replace(" format", "").split()[-1] if fmt.split() else ""
    return word if word in ITEMSIZE else ""


def tensor_bytes(t: dict) -> int:
    """Bytes of one tensor entry (0 when its shape or type is unknown)."""
    return numel(dims(t)) * ITEMSIZE.get(dtype_of(t), 0)


def layer_bytes(layer: dict) -> int:
    """Bytes a layer must move: its inputs and outputs once each (a tensor read twice counts once)."""
    seen, total = set(), 0
    for t in list(layer.get("Inputs", [])) + list(layer.get("Outputs", [])):
        if t.get("Name") in seen:
            continue
        seen.add(t.get("Name"))
        total += tensor_bytes(t)
    return total


def layer_flops(layer: dict) -> int:
    """FLOPs of a conv/GEMM/MatMul/attention layer (0 for other layers or unknown shapes)."""
    kind = str(layer.get("LayerType", ""))
    ins = [dims(t) for t in layer.get("Inputs", [])]
    outs = [dims(t) for t in layer.get("Outputs", [])]
    out = outs[0] if outs else None
    if kind not in TENSOR_CORE or out is None or len(ins) < 2 or ins[0] is None or ins[1] is None:
        return 0
    a, b = ins[0], ins[1]
    if kind in CONV:  # each output element: Cin/groups * kernel MACs (weight [Cout, Cin/g, k...])
        return 2 * numel(out) * numel(b[1:])
    if kind in CONV_T:  # each input element scatters into Cout/groups * kernel outputs
        return 2 * numel(a) * numel(b[1:])
    if kind in GEMM:  # |A| * |B| / |Y| = K^2 for 2-D operands whatever transA/transB are
        return 2 * numel(out) * round(math.sqrt(numel(a) * numel(b) / max(numel(out), 1)))
    if kind in MATMUL:
        return 2 * numel(out) * a[-1]
    return attention_flops(a, b, out, layer.get("attrs") or {})


def attention_flops(q, k, out, attrs: dict) -> int:
    """4 * B * H * Sq * Sk * D = 4 * |O| * Sk (Q K^T and P V) for K as [B, S, E] or [B, H, S, D]."""
    if attrs.get("k_view"):
        from ..ops.fused.attention import view_shape
        k = tuple(view_shape(list(k), attrs["k_view"]))
    if len(k) < 2:
        return 0
    sk = k[-1] if attrs.get("k_transposed") else (k[1] if len(k) == 3 else k[-2])
    return 4 * numel(out) * sk


def intensity(flops: int, nbytes: int) -> float:
    """Arithmetic intensity (FLOP/byte); 0 when either is unknown."""
    return flops / nbytes if flops and nbytes else 0.0
