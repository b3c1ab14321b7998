"""FP8 / INT8 GEMM tactics of fused.QGemm / fused.QMatMul on CUDA: the triton "qgemm" kernels (every
variant; the representative subset of each config space), every aten "scaled_mm" (cuBLASLt through
torch._scaled_mm) tactic and its triton "scaled_mm_pw" variant (the follow-up as one generated
kernel) against the fused op's reference on odd shapes; the runners in a
CUDA graph; and a quantized model built at opt level 3 (all these tactics timed against the FP16
form) against the FP32 engine. Timings: bench/quant.py."""

import numpy as np
import pytest
import torch

import tensorforge as tf
from tensorforge.kernels.aten import scaled_mm
from tensorforge.kernels.quant_gemm import problem
from tensorforge.kernels.triton import qgemm
from tests.gpu import sweep
from tests.kernels import qgemm_cases as qc
from tests.kernels.test_scaled_mm import VARIANTS as SMM_VARIANTS
from tests.kernels.test_scaled_mm import run_all
from tests.kernels.test_triton_qgemm import SHAPES, VARIANTS, run_case

FP8_OK = torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 9)
needs_fp8 = pytest.mark.skipif(not FP8_OK, reason="FP8 needs sm_89+")
QTYPES = [pytest.param(qc.F8, marks=needs_fp8), "int8"]


@pytest.mark.fast(qtype="int8")
@pytest.mark.parametrize("qtype", QTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=["gemm", "matmul"])
def test_triton_qgemm_every_variant(shape, qtype):
    typ, lead, n, k = shape
    for variant in VARIANTS:
        run_case(typ, lead, n, k, qtype, variant, device="cuda")


@pytest.mark.parametrize("qtype", QTYPES)
@pytest.mark.parametrize("mnk", [(77, 300, 200), (1100, 260, 136)])
def test_triton_qgemm_configs(mnk, qtype):
    """The representative subset of the config space (every config with TF_GPU_FULL_SWEEP=1)."""
    m, n, k = mnk
    for i, t in enumerate(sweep.tactics(qgemm.configs(m, n, k))):
        variant = list(VARIANTS)[i % len(VARIANTS)]
        run_case("fused.QGemm", (m,), n, k, qtype, variant, device="cuda", params=t["params"])


@needs_fp8
@pytest.mark.fast(variant="residual_float")
@pytest.mark.parametrize("variant", list(SMM_VARIANTS))
def test_scaled_mm_every_tactic(variant):
    for shape in (("fused.QGemm", (37,), 48, 80), ("fused.QMatMul", (3, 7), 32, 64), ("fused.QGemm", (1,), 64, 96)):
        run_all(*shape, variant, device="cuda", generated=True)


@needs_fp8
def test_scaled_mm_fp8_output_saturates():
    """The output Q done by cuBLASLt (FP8 output) saturates at 448 as QuantizeLinear does."""
    lay, shapes, attrs, ins = qc.make("fused.QGemm", qc.F8, (64,), 64, 128, per_channel=False, out_q=qc.F8,
                                      saturate=True, device="cuda")
    t = [t for t in scaled_mm.tactics_for(problem(lay, shapes), attrs["out_q"], None, True)
         if t["params"]["mm_out"] == qc.F8]
    assert t
    got = scaled_mm.scaled_mm_factory(lay, attrs, 17, torch.device("cuda"), t[0]["params"])(ins)[0]
    want = qc.reference(lay, ins)
    assert float(want.float().abs().max()) == 448.0
    qc.check(got, want)


@needs_fp8
def test_kernels_in_a_cuda_graph():
    """Both runners captured (weights' K-major copies made before capture) replay the eager result."""
    lay, shapes, attrs, ins = qc.make("fused.QMatMul", qc.F8, (4, 33), 96, 128, epi="gelu", device="cuda")
    p = dict(qgemm.configs(132, 96, 128)[0]["params"], out_dtype="float32")
    runs = [qgemm.qgemm_factory(lay, attrs, 17, torch.device("cuda"), p),
            scaled_mm.scaled_mm_factory(lay, attrs, 17, torch.device("cuda"),
                                        {"scale": "rowwise", "mm_out": "float16", "fast_accum": 0,
                                         "out_dtype": "float32"})]
    for run in runs:
        first = run(ins)[0].clone()
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            run(ins)
        s.synchronize()
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g, stream=s):
            out = run(ins)[0]
        for _ in range(3):
            g.replay()
            torch.cuda.synchronize()
            torch.testing.assert_close(out, first, rtol=0, atol=0)


@needs_fp8
def test_cublaslt_fp8_epilogues():
    """aten cublaslt_fp8 (cuBLASLt's FP8 GEMM with the bias, GELU and output Q in its epilogue through
    our ctypes binding): every tactic cuBLASLt offers for per-tensor weight scales vs the reference, none for
    per-channel ones; then one runner captured in a CUDA graph replays its eager result."""
    from tensorforge.kernels.aten import scaled_lt
    dev = torch.device("cuda")
    cases = [qc.make("fused.QGemm", qc.F8, (37,), 48, 80, epi="gelu", out_q=qc.F8, device="cuda"),
             qc.make("fused.QGemm", qc.F8, (37,), 48, 80, epi="gelu", out_q=qc.F8, per_channel=False, device="cuda"),
             qc.make("fused.QMatMul", qc.F8, (4, 33), 96, 128, bias=False, out_q=qc.F8, saturate=True, per_channel=False,
                     device="cuda"),
             qc.bias_extra_case("cuda"), qc.bias_extra_case("cuda", per_channel=False)]
    for lay, shapes, attrs, ins in cases:
        ts = scaled_lt.scaled_lt_candidates(lay, shapes, dev)
        # per-channel scales would need cuBLASLt's per-vector scale modes, which the H200's cuBLASLt refused
        assert bool(ts) == (ins[3].numel() == 1), attrs
        want = qc.reference(lay, ins)
        for t in ts:
            got = scaled_lt.scaled_lt_factory(lay, attrs, 17, dev, t["params"])(ins)[0]
            qc.check(got, want, rel=1e-2)
    lay, shapes, attrs, ins = cases[1]
    params = scaled_lt.scaled_lt_candidates(lay, shapes, dev)[0]["params"]
    run = scaled_lt.scaled_lt_factory(lay, attrs, 17, dev, params)
    first = run(ins)[0].clone()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g, stream=s):
        out = run(ins)[0]
    g.replay()
    torch.cuda.synchronize()
    assert torch.equal(out.view(torch.uint8), first.view(torch.uint8))


@pytest.mark.parametrize("mode", [pytest.param("fp8", marks=needs_fp8), "int8"])
def test_quantized_model_builds_with_low_precision_tactics(mode):
    from tensorforge.quant import quantize
    rng = np.random.default_rng(1)
    feeds = [{"x": rng.standard_normal((64, 128)).astype(np.float32)} for _ in range(4)]
    q = quantize(qc.ffn_model(), mode, feeds, "max")
    eng = tf.Builder(tf.BuilderConfig(device="cuda", opt_level=3)).build(q)
    ref = tf.Builder(tf.BuilderConfig(device="cuda", opt_level=0, tf32=False)).build(qc.ffn_model())
    qlayers = [lay for lay in eng.plan.layers if lay.type in ("fused.QGemm", "fused.QMatMul")]
    assert qlayers
    times = eng.plan.meta.get("quant_times", {})
    for lay in qlayers:  # every Triton qgemm config compiled and matched the reference (cuBLASLt may
        t = times.get(lay.name, {})  # refuse a scaled_mm configuration: then at least one of them ran)
        tri = {k: v for k, v in t.items() if k.startswith("triton:qgemm")}
        assert tri and all(v is not None for v in tri.values()), t
        if mode == "fp8":
            assert any(v is not None for k, v in t.items() if "scaled_mm" in k), t
    x = {"x": feeds[0]["x"]}
    got = eng.create_execution_context().infer(x)["y"].float().cpu().numpy().ravel()
    want = ref.create_execution_context().infer(x)["y"].float().cpu().numpy().ravel()
    cos = float(got @ want / (np.linalg.norm(got) * np.linalg.norm(want)))
    assert cos > 0.99, cos


@pytest.mark.parametrize("mode", [pytest.param("fp8", marks=needs_fp8), "int8"])
def test_quantized_bert_small_engine_matches_cpu_reference_engine(mode):
    """zoo:bert_base_small quantized (random calibration) built on CUDA at opt level 3 (every tactic of
    its quantized GEMMs, norms and pointwise Q kernels checked and timed) vs the same Q/DQ model
    built on the CPU (reference kernels: the exact quantized arithmetic)."""
    from tensorforge import zoo
    from tensorforge.quant import quantize
    q = quantize(zoo.get_model("bert_base_small"), mode, [zoo.random_inputs("bert_base_small", 2, seed=i)
                                                          for i in range(2)], "max")
    feeds = zoo.random_inputs("bert_base_small", 2, seed=7)
    gpu = tf.Builder(tf.BuilderConfig(device="cuda", opt_level=3)).build(q)
    cpu = tf.Builder(tf.BuilderConfig(device="cpu", opt_level=0)).build(q)
    chosen = {lay.tactic["source"] + ":" + lay.tactic["name"] for lay in gpu.plan.layers
              if lay.type in ("fused.QMatMul", "fused.QGemm")}
    got = gpu.create_execution_context().infer(feeds)
    want = cpu.create_execution_context().infer(feeds)
    for name, w in want.items():
        g, r = got[name].float().cpu().numpy().ravel(), w.float().numpy().ravel()
        cos = float(g @ r / (np.linalg.norm(g) * np.linalg.norm(r)))
        assert cos > 0.995, (name, cos, chosen)
