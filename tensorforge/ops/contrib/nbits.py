"""com.microsoft MatMulNBits: A @ dequantize(B)ᵀ with B blockwise-quantized to 2/4/8 bits along K
(ORT's matmul_nbits_quantizer writes it), plus the com.microsoft QuantizeLinear / DequantizeLinear
(same semantics as ONNX's)."""
from __future__ import annotations

import torch

from ...errors import UnsupportedOpError
from ..common import in_info
from ..quant import dequantize_infer, dequantize_ref, quantize_infer, quantize_ref
from ..registry import infer, reference
from . import MS


def unpack(packed, bits):
    """uint8 bytes -> their bits-wide fields, lowest bits first (..., n) -> (..., n * 8 / bits)."""
    per = 8 // bits
    shifts = torch.arange(per, device=packed.device, dtype=torch.int32) * bits
    v = (packed.to(torch.int32).unsqueeze(-1) >> shifts) & ((1 << bits) - 1)
    return v.reshape(*packed.shape[:-1], packed.shape[-1] * per)


def dequantize_nbits(b, scales, zero_points, k, n, bits, block_size):
    """B (N, blocks, blob) quantized -> W (N, K) in the scales' dtype."""
    blocks = b.shape[1]
    q = unpack(b, bits).reshape(n, blocks, block_size).to(torch.float32)
    s = scales.reshape(n, blocks, 1).to(torch.float32)
    if zero_points is None:
        z = torch.full((n, blocks, 1), float(1 << (bits - 1)), device=b.device)
    elif zero_points.dtype == torch.uint8:  # packed like B, each column's row padded to whole bytes
        z = unpack(zero_points.reshape(n, -1), bits)[:, :blocks].reshape(n, blocks, 1).to(torch.float32)
    else:  # float zero points: w = (q - z) * s with z in the scales' type
        z = zero_points.reshape(n, blocks, 1).to(torch.float32)
    w = ((q - z) * s).reshape(n, blocks * block_size)[:, :k]
    return w.to(scales.dtype)


@reference("MatMulNBits", domain=MS)
def matmul_nbits_ref(a, b, scales, zero_points=None, g_idx=None, bias=None, K=None, N=None, bits=4,
                     block_size=None, accuracy_level=0):
    """a (..., K) @ W(N, K)ᵀ (+ bias); accuracy_level is a speed hint, computed here in a's type."""
    if g_idx is not None:
        raise UnsupportedOpError("MatMulNBits: g_idx (act-order block indices) is not supported")
    w = dequantize_nbits(b, scales, zero_points, K, N, bits, block_size)
    y = torch.matmul(a, w.to(a.dtype).t())
    return y + bias if bias is not None else y


@infer("MatMulNBits", domain=MS)
def matmul_nbits_infer(node):
    dt, a = in_info(node, 0)
    return [(dt, tuple(a[:-1]) + (node.attrs["N"],))]


reference("QuantizeLinear", domain=MS)(quantize_ref)
infer("QuantizeLinear", domain=MS)(quantize_infer)
reference("DequantizeLinear", domain=MS)(dequantize_ref)
infer("DequantizeLinear", domain=MS)(dequantize_infer)
