"""Triton tactic "sdpa_q" (kernels/triton/attention_q.py): a fused.Attention with an output Q as SDPA plus one
generated Q kernel, in triton's CPU interpreter (the math backend) vs the layer's reference, and its candidates."""
import pytest
import torch

from tensorforge import kernels
from tensorforge.kernels.layer_shapes import LayerShapes
from tensorforge.kernels.triton import attention_q as aq
from tensorforge.ops.fused.attention import quantize_out
from tensorforge.runtime.plan import LayerSpec
from tests.kernels import cases
from tests.kernels.qgemm_cases import check
from tests.kernels.test_triton_attention import expected, packed_case, vit_case

F16 = torch.float16
QTYPES = ["float8e4m3fn", "int8", "uint8"]


@pytest.fixture
def kernel_ran(monkeypatch):
    """Every call runs the generated kernel (never the reference fallback)."""
    cases.epilogue_must_run(monkeypatch)


def run_case(ins, attrs, qtype, backend="math", device="cpu", out=False):
    """The tactic vs the reference's output (in the inputs' type) quantized (tests/kernels/qgemm_cases.check)."""
    y = expected([t.cpu() for t in ins], attrs, F16).to(F16)
    out_q = [float(y.float().abs().max()) / (300.0 if qtype == "float8e4m3fn" else 100.0),
             0 if qtype != "uint8" else 128, qtype]
    names = ["x", "x", "x", "m" if len(ins) > 3 else None]
    lay = LayerSpec("attn", "fused.Attention", names, ["y"], attrs={**attrs, "out_q": out_q},
                    tactic={"source": "triton", "name": "sdpa_q",
                            "params": {"backend": backend, "BLOCK": 1024, "num_warps": 4}})
    fn = kernels.make_kernel(lay, 17, torch.device(device))
    want = quantize_out(y, out_q)
    buf = torch.empty(want.shape, dtype=want.dtype, device=device) if out else None
    got = fn(ins, [buf] if out else None)[0]
    if out:
        assert got is buf
    check(got.cpu(), want)


@cases.interpreter_only
@pytest.mark.parametrize("qtype", QTYPES)
def test_vit_and_packed_heads_merged_and_quantized(interpret, kernel_ran, qtype):
    run_case(*vit_case(2, 3, 50, 32, dtype=F16), qtype)
    run_case(*packed_case(2, 3, 37, 16, (2, 1, 1, 37), dtype=F16), qtype, out=True)


def test_q_expr_is_the_lowered_template():
    """The expression computes what the op's QuantizeLinear reference computes, on values across the range and
    at rounding ties."""
    from tensorforge.ops.fused.expr import eval_expr
    x = torch.cat([torch.linspace(-600, 600, 2001), torch.tensor([0.5, 1.5, 2.5, -0.5, 126.5, 127.5])]).to(F16)
    for s, z, dt in ([0.75, 0, "float8e4m3fn"], [0.5, 0, "int8"], [0.5, 128, "uint8"]):
        got = eval_expr(aq.q_expr([s, z, dt]), [x])
        want = quantize_out(x, [s, z, dt])
        assert got.dtype == want.dtype and torch.equal(got.view(torch.uint8), want.view(torch.uint8)), dt
    assert aq.q_expr([1.0, 0, "float16"]) is None


def _shapes(dtype="float16", d=64, mask=False):
    q = {"dtype": dtype, "shape": (2, 197, 3 * 4 * d), "kind": "act"}
    m = {"dtype": dtype, "shape": (2, 1, 1, 197), "kind": "act"} if mask else None
    return LayerShapes.of([q, q, q, m], [{"dtype": "float8e4m3fn", "shape": (2, 197, 4 * d)}])


def test_candidates(monkeypatch):
    """Flash and cuDNN SDPA with the Q kernel for a fp16 attention with an 8-bit output on sm90; cuDNN only with
    a mask; nothing without an output Q, in fp32, or on the CPU."""
    _, attrs = vit_case(1, 4, 197, 64, device="meta")
    lay = LayerSpec("attn", "fused.Attention", ["x", "x", "x", None], ["y"], attrs={**attrs, "out_q": [0.1, 0, "float8e4m3fn"]})
    cuda = torch.device("cuda")
    assert aq.sdpa_q_candidates(lay, _shapes(), torch.device("cpu")) == []
    monkeypatch.setattr(aq, "is_cuda", lambda d: True)
    monkeypatch.setattr(aq, "capability", lambda d: (9, 0))
    got = [c["params"]["backend"] for c in aq.sdpa_q_candidates(lay, _shapes(), cuda)]
    assert got == ["flash", "cudnn"]
    masked = LayerSpec("attn", "fused.Attention", ["x", "x", "x", "m"], ["y"], attrs=lay.attrs)
    assert [c["params"]["backend"] for c in aq.sdpa_q_candidates(masked, _shapes(mask=True), cuda)] == ["cudnn"]
    assert aq.sdpa_q_candidates(lay, _shapes("float32"), cuda) == []
    plain = LayerSpec("attn", "fused.Attention", ["x", "x", "x", None], ["y"], attrs=attrs)
    assert aq.sdpa_q_candidates(plain, _shapes(), cuda) == []
