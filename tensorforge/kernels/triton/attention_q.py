"""Triton tactic "sdpa_q": a fused.Attention with an output Q (out_q: the next GEMM's input quantized, absorbed
by passes/quant/finish) as one SDPA backend through torch and one generated pointwise kernel for the Q.

Why: the aten "sdpa" tactic runs the Q as torch ops in fp32 (upcast, divide, clamp, cast: ~4 passes over the
tensor), so in every FP8 engine the Triton flash kernel with its Q fused won. But that kernel is slower than
torch's SDPA (session 13 on the H200: ViT-B/16 FP8's 12 attentions 0.412 ms with the flash kernel, the FP16
engine's SDPA 0.338 ms; BERT-base 0.203 vs 0.161). SDPA plus one pass for the Q should be ~2 µs per layer
faster than the flash kernel in ViT (one 9.7 MB fp16 read and a 4.8 MB e4m3 write at ~3 TB/s). Timed against
it like every tactic. Params: backend (as aten's sdpa), BLOCK, num_warps."""
from __future__ import annotations

from ..device import capability, is_cuda
from ..layer_shapes import LOW
from ..registry import tactic_family

QTYPES = ("float8e4m3fn", "int8", "uint8")


def q_expr(out_q) -> dict | None:
    """The pointwise expression of QuantizeLinear(y) for out_q = [scale, zero point, type] over an fp16 / bf16
    input 0: the Q template a lowered Q computes (ops.fused.qdq_expr)."""
    from ...ops.fused.expr import ExprBuilder
    from ...ops.fused.qdq_expr import q_steps, steps_expr
    s, z, dt = out_q
    if dt not in QTYPES:
        return None
    b = ExprBuilder()
    return b.build(steps_expr(b, b.input(0), q_steps(float(s), z, dt, "float16")))


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
