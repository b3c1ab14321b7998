"""Triton tactic "sdpa_q": a fused.Attention with an output Q (out_q: the next GEMM's input quantized, absorbed
by passes/quant/finish) as one SDPA backend through torch and one generated pointwise kernel for the Q.

Why: the aten "sdpa" tactic runs the Q as torch ops in fp32 (upcast, divide, clamp, cast: ~4 passes over the
tensor), so in every FP8 engine the Triton flash kernel with its Q fused won. But that kernel is slower than
torch's SDPA (session 13 on the H200: ViT-B/16 FP8's 12 attentions 0.412 ms with the flash kernel, the FP16
engine's SDPA 0.338 ms; BERT-base 0.203 vs 0.161). SDPA plus one pass for the Q should be ~2 µs per layer
faster than the flash kernel in ViT (one 9.7 MB fp16 read and a 4.8 MB e4m3 write at ~3 TB/s). Timed against
it like every tactic. Params: backend (as aten's sdpa), BLOCK, num_warps."""
from __future__ import annotations

import torch

from ... import dtypes
from ..device import capability, is_cuda
from ..layer_shapes import LOW
from ..registry import tactic_family

F8_MAX = {"float8e4m3fn": 448.0}
INT_RANGE = {"int8": (-128.0, 127.0), "uint8": (0.0, 255.0)}


def q_expr(out_q) -> dict | None:
    """The pointwise expression of QuantizeLinear(y) for out_q = [scale, zero point, type] over a float input 0:
    the steps a lowered Q computes (passes.quant.lower's template: fp32, divide, [round, add zp,] clip, cast)."""
    s, z, dt = out_q
    if dt not in F8_MAX and dt not in INT_RANGE:
        return None
    nodes = [{"op": "input", "i": 0}, {"op": "Cast", "args": [0], "attrs": {"to": 1}},
             {"op": "const", "v": float(s), "dtype": "float32"}, {"op": "Div", "args": [1, 2], "attrs": {}}]
    if dt in F8_MAX:
        lo, hi = -F8_MAX[dt], F8_MAX[dt]
    else:
        nodes.append({"op": "Round", "args": [len(nodes) - 1], "attrs": {}})
        if z:
            nodes.append({"op": "const", "v": float(z), "dtype": "float32"})
            nodes.append({"op": "Add", "args": [len(nodes) - 2, len(nodes) - 1], "attrs": {}})
        lo, hi = INT_RANGE[dt]
    nodes.append({"op": "Clip", "args": [len(nodes) - 1], "attrs": {"min": lo, "max": hi}})
    nodes.append({"op": "Cast", "args": [len(nodes) - 1], "attrs": {"to": dtypes.to_onnx(dt)}})
    return {"nodes": nodes, "out": len(nodes) - 1}


def make_sdpa_q(layer, attrs, opset, device, params):
    """The runner: SDPA with the backend forced (no Q), then the Q kernel; the reference where it cannot run."""
    from torch.nn.attention import sdpa_kernel

    from ...ops import registry
    from ...ops.fused.attention import attention_ref
    from ..aten.attention import sdpa_backend
    from .runners import EpilogueRunner
    op = registry.get(layer.type, layer.domain, layer.name)
    plain = {k: v for k, v in attrs.items() if k != "out_q"}
    backend = sdpa_backend(params["backend"])

    def anchor(lead):
        with sdpa_kernel(backend):
            return attention_ref(*lead, **plain)

    def reference(inputs):
        return op.run(inputs, attrs, opset)
    expr = q_expr(attrs["out_q"])
    runner = EpilogueRunner({"epilogue": expr}, params, reference, anchor, 4)

    def fn(inputs, outs=None):
        ins = list(inputs) + [None] * max(0, 4 - len(inputs))
        return runner(ins[:4], outs)
    fn.takes_out = True
    return fn


@tactic_family("triton", {"sdpa_q": make_sdpa_q}, library="TRITON", writes_in_place=True)
def sdpa_q_candidates(layer, shapes, device) -> list[dict]:
    """SDPA's flash and cuDNN backends with the Q kernel, for a fp16/bf16 attention with an 8-bit output (CUDA)."""
    if layer.type != "fused.Attention" or not is_cuda(device) or shapes is None or not layer.attrs.get("out_q"):
        return []
    q = shapes.inp(0)
    if q is None or q["dtype"] not in LOW or q_expr(layer.attrs["out_q"]) is None:
        return []
    from ..aten.attention import head_dim
    d, masked, cap = head_dim(layer, shapes), shapes.inp(3) is not None, capability(device)
    out = []
    if d is not None and d % 8 == 0 and d <= 256 and not masked and cap >= (8, 0):
        out.append("flash")
    if d is not None and d % 8 == 0 and d <= 128 and cap >= (9, 0):
        out.append("cudnn")
    return [{"source": "triton", "name": "sdpa_q", "level": 3,
             "params": {"backend": b, "BLOCK": 1024, "num_warps": 4}} for b in out]
