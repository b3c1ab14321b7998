"""Triton "gemm" tactics on CUDA: every level-3 and level-4 config matches the reference on odd
sizes (fp16; bf16 and fp32 on the default configs), the split-K path, and zoo:bert_base_small
built in FP16 with the triton GEMMs forced, against ONNX Runtime
(timings: bench/triton_configs.py gemm)."""

import numpy as np
import pytest
import torch

import tensorforge as tf
from tensorforge.kernels.triton import gemm
from tensorforge.testing import run_ort
from tests.gpu import sweep
from tests.kernels.test_triton_gemm import check, gemm_cases

TRITON_ONLY = ["-CUBLAS", "-CUBLAS_LT", "-CUDNN", "-ATEN"]
# (M, N, K): small M (no split), small M with long K (split-K offered), mid and large M
SHAPES = [(37, 50, 29), (77, 300, 1700), (600, 130, 200), (1100, 260, 136)]


def _all_configs(m, n, k):
    """Params of every offered config (sweep's subset unless TF_GPU_FULL_SWEEP=1)."""
    return [c["params"] for c in sweep.tactics(gemm.configs(m, n, k))]


@pytest.mark.fast(mnk=SHAPES[0])
@pytest.mark.parametrize("mnk", SHAPES)
def test_every_config_matches_reference_fp16(mnk):
    m, n, k = mnk
    ffn = list(gemm_cases("cuda", torch.float16, m, n, k))
    gelu, residual = ffn[1], ffn[2]
    for i, p in enumerate(_all_configs(m, n, k)):
        typ, attrs, ins = residual if i % 2 else gelu
        check(typ, attrs, ins, p, torch.float16)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_default_configs_all_cases(dtype):
    m, n, k = 77, 300, 1700
    default = [c["params"] for c in gemm.configs(m, n, k) if "level" not in c]
    assert any("SPLIT_K" in p for p in default)
    every = list(gemm_cases("cuda", dtype, m, n, k))
    for i, p in enumerate(sweep.tactics(default)):  # all cases on the first config, two rotating ones after
        for typ, attrs, ins in every if i == 0 else [every[i % len(every)], every[(i + 3) % len(every)]]:
            check(typ, attrs, ins, p, dtype)


def test_split_k_extremes_and_out_buffer():
    typ, attrs, ins = list(gemm_cases("cuda", torch.float16, 128, 768, 3072))[2]
    for s in (2, 5, 8):
        run = check(typ, attrs, ins, {"BLOCK_M": 32, "BLOCK_N": 64, "BLOCK_K": 128, "GROUP_M": 8, "num_warps": 4,
                                      "num_stages": 4, "SPLIT_K": s}, torch.float16)
        out = torch.empty(2, 128, 768, dtype=torch.float16, device="cuda")
        assert run(ins, [out])[0] is out


@pytest.mark.fast(split=7)
@pytest.mark.parametrize("split", [2, 7, 16])
def test_serial_split_k_repeated_and_in_a_cuda_graph(split):
    """One-kernel split-K on the GPU: the per-tile counters reset themselves, so eager runs and many
    CUDA-graph replays (programs of one tile racing on real SMs) all give the same result."""
    typ, attrs, ins = list(gemm_cases("cuda", torch.float16, 128, 768, 3072))[2]
    p = {"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 64, "GROUP_M": 8, "num_warps": 4, "num_stages": 4,
         "SPLIT_K": split, "SERIAL": 1}
    run = check(typ, attrs, ins, p, torch.float16)
    first = run(ins)[0].clone()
    out = torch.empty_like(first)
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        run(ins, [out])
    s.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g, stream=s):
        for _ in range(5):
            run(ins, [out])
    for _ in range(20):
        out.fill_(float("nan"))
        g.replay()
        torch.cuda.synchronize()
        torch.testing.assert_close(out, first, rtol=0, atol=0)


@pytest.mark.fast
def test_candidates_on_cuda_device():
    from tests.kernels.test_triton_gemm import _ffn
    from tensorforge import kernels
    cands = kernels.candidates(*_ffn(), torch.device("cuda"))
    assert any(c["source"] == "triton" and c["name"] == "gemm" for c in cands)


def _cos(a, b):
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _weight_gemms(eng):
    p = eng.plan
    return [lay for lay in p.layers if lay.type in gemm.TYPES and p.tensors[lay.inputs[1]].kind == "weight"]


@pytest.mark.parametrize("split", [False, True])
def test_bert_small_fp16_with_triton_gemms(monkeypatch, split):
    from tensorforge import zoo
    if split:  # every GEMM through the split-K pair of kernels
        monkeypatch.setattr(gemm, "configs", lambda m, n, k, sms=132: [
            {"source": "triton", "name": "gemm", "params": {"BLOCK_M": 16, "BLOCK_N": 32, "BLOCK_K": 16, "GROUP_M": 8,
                                                             "num_warps": 4, "num_stages": 3, "SPLIT_K": 3}}])
    model, feed = zoo.get_model("bert_base_small"), zoo.random_inputs("bert_base_small", 3, seed=5)
    cfg = tf.BuilderConfig(device="cuda", fp16=True, opt_level=0, tactic_sources=TRITON_ONLY)
    eng = tf.Builder(cfg).build(model)
    layers = _weight_gemms(eng)
    assert layers and all(lay.tactic["name"] == "gemm" for lay in layers), [lay.tactic for lay in layers]
    got = eng.create_execution_context().infer(feed)
    ref = run_ort(model, feed)
    for k, r in ref.items():
        g = got[k].float().cpu().numpy()
        assert _cos(g, r) >= 0.999, (k, _cos(g, r))
        np.testing.assert_allclose(g, r, rtol=2e-2, atol=2e-2 * max(1.0, float(np.abs(r).max())), err_msg=k)


@pytest.mark.usefixtures("triton_sweep")  # level 4 over sweep's subset of each space: the longest build
def test_bert_small_fp16_timed_selection():
    from tensorforge import zoo
    model, feed = zoo.get_model("bert_base_small"), zoo.random_inputs("bert_base_small", 2, seed=6)
    eng = tf.Builder(tf.BuilderConfig(device="cuda", fp16=True, opt_level=4)).build(model)
    got = eng.create_execution_context().infer(feed)
    for k, r in run_ort(model, feed).items():
        assert _cos(got[k].float().cpu().numpy(), r) >= 0.999, k
