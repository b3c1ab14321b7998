"""Generated Triton kernels on CUDA vs the fused ops' references, odd sizes, fp32 and fp16."""
import pytest
import torch

from tests.kernels import kernel_checks


@pytest.mark.fast(dtype=torch.float16)
@pytest.mark.parametrize("check", ["pointwise", "softmax", "norms", "reduce", "epilogue", "upsample"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_generated_kernel_matches_reference(check, dtype):
    getattr(kernel_checks, f"check_{check}")("cuda", dtype)


def test_e4m3_cast_on_every_boundary():
    kernel_checks.check_e4m3_cast("cuda")


def test_bf16_pointwise_and_norms():
    kernel_checks.check_pointwise("cuda", torch.bfloat16)
    kernel_checks.check_norms("cuda", torch.bfloat16)


def test_large_pointwise_uses_one_launch_and_matches():
    from tensorforge.kernels.triton.runners import PointwiseRunner
    from tests.kernels import cases
    x = torch.randn(3, 1 << 20, device="cuda")
    b = torch.randn(1 << 20, device="cuda")
    r = PointwiseRunner({"expr": cases.gelu_bias_expr()}, {"BLOCK": 2048, "num_warps": 8}, None)
    got = r([x, b])[0]
    want = 0.5 * torch.nn.functional.gelu(x + b)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert len(r.plans) == 1


@pytest.mark.fast
def test_candidates_offer_triton_on_cuda():
    from tensorforge import kernels
    from tensorforge.runtime.plan import LayerSpec
    from tests.kernels import cases
    dev = torch.device("cuda")
    for typ, attrs in (("fused.Pointwise", {"expr": cases.residual_relu_expr()}), ("fused.Softmax", {"axes": [-1]}),
                       ("fused.LayerNorm", {"axis": -1, "epsilon": 1e-5}),
                       ("fused.Reduce", {"kind": "sum", "axes": [-1], "keepdims": 1})):
        lay = LayerSpec("l", typ, [], [], attrs=attrs)
        assert any(t["source"] == "triton" for t in kernels.candidates(lay, None, dev)), typ  # shapes unknown
