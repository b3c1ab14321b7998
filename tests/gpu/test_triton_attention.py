"""flash_attention compiled on CUDA: every config vs the fused.Attention reference (fp16 / bf16,
odd lengths, packed / selected / plain views, padded head dims, masks, causal), the shapes that
matter (BERT-base, ViT-B/16, GPT-2), and zoo FP16 engines with the kernel forced vs ONNX Runtime
(timings: bench/triton_configs.py attention)."""

import numpy as np
import pytest
import torch

import tensorforge as tf
from tensorforge.kernels.triton import attention as fa
from tensorforge.testing import run_ort
from tests.gpu import sweep
from tests.kernels.test_triton_attention import (_rand, engine_check, packed_case, plain_case, run_check, run_check_q,
                                               vit_case)

DTYPES = [torch.float16, torch.bfloat16]
CUDA = dict(device="cuda")


def _params(cfg):
    bm, bn, nw, ns = cfg
    return {"BLOCK_M": bm, "BLOCK_N": bn, "num_warps": nw, "num_stages": ns}


@pytest.mark.fast(cfg=fa.LEVEL3[0], dtype=torch.float16)
@pytest.mark.parametrize("cfg", sweep.levels(fa.LEVEL3, fa.LEVEL4), ids=sweep.ident)
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_config_odd_lengths(cfg, dtype):
    run_check(*packed_case(2, 3, 77, 64, (2, 1, 1, 77), dtype=dtype, **CUDA), _params(cfg), dtype)
    run_check(*vit_case(2, 3, 197, 64, dtype=dtype, **CUDA), _params(cfg), dtype)


def _fits(cfg, d):
    return fa.smem_bytes(cfg[0], cfg[1], cfg[3], d, d) <= fa.smem_limit(torch.device("cuda"))


@pytest.mark.fast(cfg=fa.LEVEL3[3], dtype=torch.float16)
@pytest.mark.parametrize("cfg", sweep.levels(fa.LEVEL3), ids=sweep.ident)
@pytest.mark.parametrize("dtype", DTYPES)
def test_masks_padded_heads_and_causal(cfg, dtype):
    if not _fits(cfg, 96):
        pytest.skip("config does not fit this GPU's shared memory at head dim 96")
    B, H, L, S = 2, 3, 33, 197
    bool_mask = _rand((B, 1, L, S), 1, **CUDA) > -1.2
    run_check(*plain_case(B, H, L, S, 40, 72, bool_mask, dtype=dtype, **CUDA), _params(cfg), dtype)
    run_check(*plain_case(B, H, L, S, 96, 96, _rand((1, 1, L, S), 2, **CUDA), dtype=dtype, **CUDA), _params(cfg), dtype)
    run_check(*plain_case(B, H, L, S, 16, 16, _rand((L, S), 3, **CUDA), dtype=dtype, **CUDA), _params(cfg), dtype)
    run_check(*plain_case(B, H, 150, 150, 64, 64, _rand((B, 1, 1, 150), 4, **CUDA), dtype=dtype, **CUDA),
              _params(cfg), dtype, causal=True)
    run_check(*plain_case(B, H, 61, 150, 64, 64, dtype=dtype, **CUDA), _params(cfg), dtype, causal=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_head_dim_128_configs(dtype):
    lay_cfgs = [(t["params"]["BLOCK_M"], t["params"]["BLOCK_N"], t["params"]["num_warps"], t["params"]["num_stages"])
                for t in _offers(128)]
    assert lay_cfgs
    for cfg in sweep.pick(lay_cfgs, lambda c: c[0] * c[1]):
        run_check(*plain_case(2, 2, 97, 131, 128, 128, _rand((2, 1, 1, 131), 5, **CUDA), dtype=dtype, **CUDA),
                  _params(cfg), dtype)


def _offers(d):
    from tests.kernels.test_triton_attention import _layer
    return fa.flash_candidates(*_layer(d=d), torch.device("cuda"))


def bert_case(B, S=128, H=12, d=64, dtype=torch.float16):
    """BERT: separate Q / K / V projections [B, S, H·d], key-padding mask [B, 1, 1, S]."""
    x = [_rand((B, S, H * d), 10 + i, dtype, "cuda") for i in range(3)]
    split = [["reshape", [0, S, H, d]], ["transpose", [0, 2, 1, 3]]]
    attrs = {"q_view": split, "k_view": [["reshape", [0, S, H, d]], ["transpose", [0, 2, 3, 1]]], "v_view": split,
             "k_transposed": 1, "scale": d ** -0.5,
             "out_view": [["transpose", [0, 2, 1, 3]], ["reshape", [0, S, H * d]]]}
    mask = torch.zeros(B, 1, 1, S, device="cuda")
    mask[..., S - S // 5:] = -10000.0
    return x + [mask.to(dtype)], attrs


def model_cases():
    """(name, inputs, attrs, causal-as-mask) on the shapes the brief's targets name."""
    gpt_ins, gpt_attrs = packed_case(8, 12, 256, 64, dtype=torch.float16, **CUDA)
    causal = torch.zeros(256, 256, device="cuda").masked_fill(~torch.ones(256, 256, dtype=torch.bool,
                                                                             device="cuda").tril(), float("-inf"))
    return {"bert_bs1": bert_case(1), "bert_bs32": bert_case(32),
            "vit_bs32": vit_case(32, 12, 197, 64, dtype=torch.float16, **CUDA),
            "gpt2_bs8_s256": (gpt_ins + [causal.to(torch.float16)[None, None].expand(8, 1, 256, 256)], gpt_attrs)}


@pytest.mark.parametrize("case", ["bert_bs1", "bert_bs32", "vit_bs32", "gpt2_bs8_s256"])
def test_model_shapes_every_default_config(case):
    ins, attrs = model_cases()[case]
    for cfg in sweep.levels(fa.LEVEL3):
        run_check(ins, attrs, _params(cfg), torch.float16)


TRITON_ATTENTION = ["-ATEN", "-CUDNN"]  # no SDPA tactics: fused.Attention gets flash_attention first
ZOO = ["bert_base_small", "vit_b16_small", "gpt2_small_small"]


@pytest.mark.fast(name="bert_base_small", cfg=fa.LEVEL3[0])
@pytest.mark.parametrize("name", ZOO)
@pytest.mark.parametrize("cfg", sweep.levels(fa.LEVEL3), ids=sweep.ident)
def test_small_zoo_fp16_engine_with_flash_attention_forced(name, cfg):
    engine_check(name, _params(cfg), "cuda")


def _cos(a, b):
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("name", ZOO)
@pytest.mark.parametrize("opt_level", [0, 3])
def test_small_zoo_fp16_engine_built_with_flash_attention(name, opt_level):
    """Level 0 without SDPA tactics picks flash_attention; level 3 times it against SDPA."""
    from tensorforge import zoo
    model, feed = zoo.get_model(name), zoo.random_inputs(name, 3, seed=5)
    srcs = TRITON_ATTENTION if opt_level == 0 else None
    eng = tf.Builder(tf.BuilderConfig(device="cuda", fp16=True, opt_level=opt_level, tactic_sources=srcs)).build(model)
    attn = [lay for lay in eng.plan.layers if lay.type == "fused.Attention"]
    assert attn and all(lay.precision == "float16" for lay in attn)
    if opt_level == 0:
        assert all(lay.tactic["name"] == "flash_attention" for lay in attn), [lay.tactic for lay in attn]
    print(f"\n{name} level {opt_level}: attention tactics", sorted({str(lay.tactic) for lay in attn}))
    got = eng.create_execution_context().infer(feed)
    for k, r in run_ort(model, feed).items():
        g = got[k].float().cpu().numpy()
        assert np.isfinite(g).all(), k
        if np.issubdtype(r.dtype, np.floating):
            assert _cos(g, r) >= 0.999, (k, _cos(g, r))
            np.testing.assert_allclose(g, r, rtol=3e-2, atol=3e-2 * max(1.0, float(np.abs(r).max())), err_msg=k)


@pytest.mark.parametrize("qtype", ["float8e4m3fn", "int8", "uint8"])
def test_output_q_in_the_store(qtype):
    """fused.Attention with out_q (the next GEMM's input Q): quantized in the kernel's store, compiled."""
    run_check_q(*packed_case(2, 3, 77, 64, (2, 1, 1, 77), dtype=torch.float16, **CUDA),
                {"BLOCK_M": 64, "BLOCK_N": 64, "num_warps": 4, "num_stages": 3}, torch.float16, qtype)


@pytest.mark.parametrize("qtype", ["float8e4m3fn", "int8"])
@pytest.mark.parametrize("backend", ["flash", "cudnn"])
def test_sdpa_with_the_q_kernel(backend, qtype):
    """Tactic sdpa_q (SDPA + the generated Q kernel) at ViT-B/16's and BERT's shapes vs the reference, into a
    preallocated output too."""
    from tests.kernels.test_triton_attention_q import run_case
    if torch.cuda.get_device_capability() < (9, 0) and backend == "cudnn":
        pytest.skip("cuDNN attention tactics are offered on sm90+")
    run_case(*vit_case(4, 12, 197, 64, dtype=torch.float16, **CUDA), qtype, backend, "cuda")
    run_case(*packed_case(4, 12, 128, 64, dtype=torch.float16, **CUDA), qtype, backend, "cuda", out=True)
