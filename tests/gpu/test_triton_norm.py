"""Triton LayerNorm / RMSNorm kernels (tactic "norm") on CUDA: every config the candidates offer
(levels 3 and 4) at odd sizes in fp16 / bf16 / fp32 vs torch, the ViT / BERT shapes, and a
runtime layer with pre-ROWS params. Checks shared with tests/kernels/test_triton_norm.py."""
import pytest
import torch

from tests.gpu import sweep
from tests.kernels import test_triton_norm as N

CUDA = torch.device("cuda")
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def configs(shape, axis=-1):
    """Every "norm" tactic's params offered for a fp16 layer of this input shape."""
    from tensorforge import kernels
    cands = kernels.candidates(*N._layer(shape, axis), CUDA)
    norm = [c["params"] for c in cands if c["name"] == "norm"]
    assert norm and len([c for c in cands if c["name"] == "norm" and "level" not in c]) <= 4
    return norm


@pytest.mark.fast(dtype=torch.float16, n=768)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", N.LENGTHS + (2048, 4097, 8192, 12000))
def test_every_config_every_length(dtype, n):
    for params in sweep.pick(configs((N.M, n))):
        N.check_lengths("cuda", dtype, params, lengths=(n,))


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_config_operands(dtype):
    for n in (45, 768):
        for params in sweep.pick(configs((N.M, n))):
            N.check_operands("cuda", dtype, params, n=n)
    N.check_operands("cuda", dtype, {"ROWS": 2, "BLOCK_N": 16})  # looped over chunks
    N.check_out_buffer("cuda", dtype, {"ROWS": 4, "num_warps": 4})


def test_prologue_dequantized_skip():
    """BERT FP8's norms after passes.quant.skip_norm: x + DQ(e4m3 skip) in the single-pass kernel."""
    for params in ({"ROWS": 4, "num_warps": 4}, {"ROWS": 1, "num_warps": 8}):
        N.check_prologue("cuda", params)


def test_prologue_sum_with_a_broadcast_input():
    """ViT's position-embedding Add and BERT's embedding sum in the norm (passes.norm_prologue)."""
    for params in ({"ROWS": 4, "num_warps": 4}, {"ROWS": 1, "num_warps": 8}):
        N.check_prologue_sum("cuda", params, shape=(32, 197, 768))


@pytest.mark.parametrize("shape", [(32, 197, 768), (1, 128, 768), (4, 77, 1024), (2, 64, 4096)])
def test_model_shapes_fp16(shape):
    """ViT-B/16 bs32, BERT bs1, CLIP text, a 4096-wide LLM row: every offered config."""
    x = N.rand(shape, torch.float16, CUDA, 0)
    g, b = N.rand(shape[-1:], torch.float16, CUDA, 1) + 2, N.rand(shape[-1:], torch.float16, CUDA, 2)
    r = N.rand(shape, torch.float16, CUDA, 3)
    for params in sweep.pick(configs(shape)):
        N.check(False, x, g, b, params=params)
        N.check(False, x, g, b, [r], epi="residual_relu", params=params)
        N.check(True, x, g, params=params, eps=1e-6)


@pytest.mark.fast
def test_layer_with_pre_rows_params():
    """A LayerSpec saved before ROWS existed ({"num_warps": w}) still builds a working kernel."""
    from tensorforge import kernels
    from tensorforge.runtime.plan import LayerSpec
    lay = LayerSpec("ln", "fused.LayerNorm", ["x", "g", "b"], ["y"], attrs={"axis": -1, "epsilon": 1e-5},
                    tactic={"source": "triton", "name": "norm", "params": {"num_warps": 8}})
    fn = kernels.make_kernel(lay, 17, CUDA)
    x = N.rand((N.M, 1000), torch.float16, CUDA, 4)
    g, b = N.rand((1000,), torch.float16, CUDA, 5), N.rand((1000,), torch.float16, CUDA, 6)
    torch.testing.assert_close(fn([x, g, b])[0].float(), N.want(False, x, g, b, (), -1, 1e-5, None).float(),
                               rtol=1e-2, atol=1e-2)
