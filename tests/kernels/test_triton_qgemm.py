"""Triton "qgemm" family (FP8 e4m3 and INT8 tl.dot with the dequantize / bias / epilogue / output Q
fused): candidate legality, the config space, and the kernels in Triton's CPU interpreter against
the fused ops' references on odd shapes (tests/gpu/test_quant_kernels_gpu.py runs them on CUDA)."""

import collections

import pytest
import torch

from tensorforge.kernels.triton import qgemm
from tensorforge.kernels.triton.qgemm_source import QGemmSignature, qgemm_source

from . import cases
from . import qgemm_cases as qc

CUDA = torch.device("cuda")
F8 = qc.F8
# (layer type, leading dims of x, N, K): odd M / N / K (K not a multiple of BLOCK_K: masked loads)
SHAPES = [("fused.QGemm", (37,), 48, 80), ("fused.QMatMul", (3, 7), 24, 33)]
VARIANTS = {
    "per_channel_bias": {},
    "per_tensor_no_bias": {"per_channel": False, "bias": False},
    "gelu": {"epi": "gelu"},
    "residual_float": {"epi": "relu_res", "residual": "float32"},
    "residual_quantized": {"epi": "relu_res", "residual": "same"},
    "out_q": {"out_q": "same"},
    "out_q_saturating": {"out_q": "same", "saturate": True},
    "residual_int8_out_uint8": {"epi": "relu_res", "residual": "int8", "out_q": "uint8"},
}


def _kw(name, qtype):
    kw = dict(VARIANTS[name])
    for key in ("residual", "out_q"):
        if kw.get(key) == "same":
            kw[key] = qtype
    if qtype == F8 and kw.get("out_q") == "uint8":
        kw["out_q"] = F8
    return kw


def run_case(typ, lead, n, k, qtype, variant, device="cpu", params=None):
    """One layer through QGemmRunner (never its reference fallback) vs the reference."""
    lay, shapes, attrs, ins = qc.make(typ, qtype, lead, n, k, device=device, **_kw(variant, qtype))
    p = dict(params or qgemm.configs(shapes.inp(0)["shape"][0] if len(lead) == 1 else lead[0] * lead[1], n, k)[0]
             ["params"])
    p["out_dtype"] = shapes.out(0)["dtype"]

    def no_fallback(inputs):
        raise AssertionError("the runner fell back to the reference")
    got = qgemm.QGemmRunner(typ, attrs, p, no_fallback)(ins)[0]
    qc.check(got, qc.reference(lay, ins))


@cases.interpreter_only
@pytest.mark.parametrize("qtype", [F8, "int8"])
@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("shape", SHAPES, ids=["gemm", "matmul"])
def test_kernel_matches_reference(interpret, shape, variant, qtype):
    typ, lead, n, k = shape
    run_case(typ, lead, n, k, qtype, variant)


@cases.interpreter_only
def test_small_blocks_and_int64_offsets_source(interpret):
    """A config with several K steps and tiles in both dims (grouped order, masked edges)."""
    p = {"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 32, "GROUP_M": 2, "num_warps": 4, "num_stages": 2}
    run_case("fused.QMatMul", (5, 9), 40, 100, F8, "residual_quantized", params=p)
    run_case("fused.QGemm", (45,), 40, 96, "int8", "out_q", params=p)
    src, _ = qgemm_source(QGemmSignature(F8, "float16", True, "float32", int64=True))
    assert "rk = tl.arange(0, BLOCK_K).to(tl.int64)" in src and "tl.dot(xa, xb, acc, max_num_imprecise_acc=BLOCK_K)" in src


def test_sources_differ_by_type():
    f8, _ = qgemm_source(QGemmSignature(F8, "float32"))
    i8, _ = qgemm_source(QGemmSignature("int8", "int8", out_q=True))
    assert "out_dtype=tl.int32" in i8 and "out_dtype=tl.int32" not in f8
    assert "_rint(tl.div_rn(y, oqs)) + oqz" in i8 and "oqs" not in f8


def test_candidates():
    lay, shapes, _, _ = qc.make("fused.QGemm", F8, (37,), 48, 80, epi="gelu")
    cands = qgemm.qgemm_candidates(lay, shapes, CUDA)
    assert cands and all(c["name"] == "qgemm" and c["params"]["BLOCK_K"] >= 32 for c in cands)
    assert all(c["params"]["out_dtype"] == "float32" for c in cands)
    assert sum("level" not in c for c in cands) <= 4 + 2  # 4 configs, 2 of them also with fast_acc (e4m3)
    assert len({tuple(sorted(c["params"].items())) for c in cands}) == len(cands)
    big = qgemm.configs(4096, 3072, 768)
    assert big[0]["params"]["BLOCK_M"] == 128 and big[0]["params"]["BLOCK_K"] == 128


@pytest.mark.parametrize("case", ["cpu", "zero_point", "uint8_input", "mixed", "float_input"])
def test_candidates_declined(case):
    qtype = "int8" if case in ("zero_point", "uint8_input") else F8
    lay, shapes, attrs, ins = qc.make("fused.QGemm", qtype, (37,), 48, 80)
    dev = CUDA
    if case == "cpu":
        dev = torch.device("cpu")
    elif case == "zero_point":
        attrs["x_zp"] = 3
    else:
        d = dict(shapes.inputs[0])
        d["dtype"] = {"uint8_input": "uint8", "mixed": "int8", "float_input": "float16"}[case]
        shapes = type(shapes).of([d] + list(shapes.inputs[1:]), shapes.outputs)
    assert qgemm.qgemm_candidates(lay, shapes, dev) == []


@cases.interpreter_only
@pytest.mark.parametrize("mode", ["fp8", "int8"])
def test_layers_of_a_quantized_model(interpret, mode):
    """What the passes make of a quantized FFN block: the activation Q (a pointwise kernel: the
    codegen's float8 cast), both GEMMs (bias and output Q inside the epilogue expression, in INT8 a
    quantized residual) through qgemm and, in FP8, every scaled_mm tactic; in FP8 the LayerNorm adds
    the quantized residual in its prologue (passes.quant.skip_norm)."""
    from tensorforge.kernels.aten import scaled_mm
    from tensorforge.kernels.quant_gemm import problem
    from tensorforge.kernels.triton.runners import NormRunner, PointwiseRunner
    layers = qc.quantized_layers(mode)
    kinds = [lay.type for lay, _, _ in layers]
    assert kinds.count("fused.QMatMul") == 2 and "fused.Pointwise" in kinds, kinds
    for lay, shapes, ins in layers:
        want = qc.reference(lay, ins)
        if lay.type == "fused.Pointwise":
            qc.check(PointwiseRunner({"expr": lay.attrs["expr"]}, {"BLOCK": 256}, None)(ins)[0], want)
        if lay.type == "fused.LayerNorm":
            assert bool(lay.attrs.get("prologue")) == (mode == "fp8"), lay.attrs
            qc.check(NormRunner(lay.attrs, {"ROWS": 4}, None, False)(ins)[0], want)
        if lay.type != "fused.QMatMul":
            continue
        cands = qgemm.qgemm_candidates(lay, shapes, CUDA)
        assert cands, lay.name
        assert qgemm.QGemmRunner(lay.type, lay.attrs, cands[0]["params"], None).spec(ins) is not None
        run_layer(lay, ins, cands[0]["params"], want)
        if mode == "fp8":
            ts = scaled_mm.tactics_for(problem(lay, shapes), None, lay.attrs.get("epilogue"), True)
            assert ts
            for t in ts:  # aten (torch follow-up) and triton (one generated follow-up kernel)
                for make in (scaled_mm.scaled_mm_factory, qgemm.scaled_mm_pw_factory):
                    got = make(lay, lay.attrs, 17, torch.device("cpu"), t["params"])(ins)[0]
                    qc.check(got, want, 1e-2)


def run_layer(lay, ins, params, want):
    def no_fallback(inputs):
        raise AssertionError("the runner fell back to the reference")
    qc.check(qgemm.QGemmRunner(lay.type, lay.attrs, params, no_fallback)(ins)[0], want)


@cases.interpreter_only
@pytest.mark.skipif(not hasattr(torch, "_scaled_mm"), reason="torch without _scaled_mm")
@pytest.mark.parametrize("variant", ["per_channel_bias", "gelu", "residual_quantized", "out_q"])
def test_scaled_mm_with_generated_followup(interpret, variant):
    """scaled_mm_pw: torch._scaled_mm (this CPU build has it) + the follow-up as one generated
    pointwise kernel (interpreted), every scaled_mm tactic that leaves a follow-up."""
    from tensorforge.kernels.aten import scaled_mm
    from tensorforge.kernels.quant_gemm import problem
    lay, shapes, attrs, ins = qc.make("fused.QMatMul", F8, (3, 7), 32, 64, **_kw(variant, F8))
    want = qc.reference(lay, ins)
    ts = qgemm.with_followup(lay, scaled_mm.tactics_for(problem(lay, shapes), attrs.get("out_q"),
                                                       attrs.get("epilogue"), True))
    assert ts and all(t["name"] == "scaled_mm_pw" for t in ts)
    for t in ts:
        run = qgemm.scaled_mm_pw_factory(lay, attrs, 17, torch.device("cpu"), t["params"])
        out = torch.empty(want.shape, dtype=want.dtype)
        got = run(ins, [out])[0]
        qc.check(got, want, 2e-3 if t["params"]["mm_out"] == "float32" else 1e-2)
        assert got is out  # the generated follow-up writes the layer's output buffer


@cases.interpreter_only
def test_fp8_quantize_fused_into_norms_and_pointwise(interpret):
    """A quantized BERT's activation Qs: fused into LayerNorm epilogues and standalone pointwise
    kernels (the code generator's float8 cast), and its QMatMuls through qgemm, vs the references."""
    from tensorforge.kernels.triton.runners import NormRunner, PointwiseRunner
    ran = collections.Counter()
    for lay, shapes, ins in qc.quantized_layers("fp8", "bert_base_small"):
        if shapes.out(0)["dtype"] == F8 and lay.type == "fused.LayerNorm":
            runner = NormRunner(lay.attrs, {"ROWS": 1}, None, False)
        elif shapes.out(0)["dtype"] == F8 and lay.type == "fused.Pointwise":
            runner = PointwiseRunner({"expr": lay.attrs["expr"]}, {"BLOCK": 256}, None)
        elif lay.type in ("fused.QMatMul", "fused.QGemm") and ran[lay.type] < 3:
            run_layer(lay, ins, qgemm.qgemm_candidates(lay, shapes, CUDA)[0]["params"], qc.reference(lay, ins))
            ran[lay.type] += 1
            continue
        else:
            continue
        qc.check(runner(ins)[0], qc.reference(lay, ins))
        ran[lay.type] += 1
    # pointwise Qs: the pooler's (the attention outputs' Qs are the attentions' own stores since session 10)
    assert ran["fused.LayerNorm"] >= 3 and ran["fused.Pointwise"] >= 1 and ran["fused.QMatMul"] == 3, ran


@cases.interpreter_only
def test_fast_accumulation_variant(interpret):
    """fp8 configs include fast_acc variants (int8 ones do not); the kernel without the per-BLOCK_K
    promotion still matches the reference in the interpreter (exact fp32 there)."""
    f8, i8 = qgemm.configs(4096, 3072, 768, fp8=True), qgemm.configs(4096, 3072, 768)
    fast = [t for t in f8 if t["params"].get("fast_acc")]
    assert len(fast) == 2 and all(t.get("level", 3) == 3 for t in fast)
    assert not any(t["params"].get("fast_acc") for t in i8)
    p = {"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 32, "GROUP_M": 2, "num_warps": 4, "num_stages": 2, "fast_acc": 1}
    run_case("fused.QMatMul", (5, 9), 40, 100, F8, "gelu", params=p)
    src, _ = qgemm_source(QGemmSignature(F8, "float16", fast_acc=True))
    assert "tl.dot(xa, xb, acc)" in src and "max_num_imprecise_acc" not in src


@cases.interpreter_only
def test_inlined_skip_input_round_trip(interpret):
    """ViT FP8's residual GEMMs after quant_inline_operands: the skip input's Q -> DQ round trip inside
    the epilogue expression (an e4m3 cast in the middle of it), through qgemm and scaled_mm_pw
    (interpreted) against the reference. With per-channel weights: with per-tensor ones quant_skip_norm
    moves the round trip into the norms (cuBLASLt then runs these GEMMs)."""
    from tensorforge.kernels.aten import scaled_mm
    from tensorforge.kernels.quant_gemm import problem
    layers = [(lay, shapes, ins) for lay, shapes, ins in qc.quantized_layers("fp8", "vit_b16_small",
                                                                            weight_scales="per-channel")
              if lay.type == "fused.QMatMul" and any(
                  nd["op"] == "Cast" and nd.get("attrs", {}).get("to") == 17
                  for i, nd in enumerate((lay.attrs.get("epilogue") or {"nodes": []})["nodes"])
                  if i != lay.attrs["epilogue"]["out"])]
    assert layers
    for lay, shapes, ins in layers[:2]:
        want = qc.reference(lay, ins)
        cands = qgemm.qgemm_candidates(lay, shapes, CUDA)
        assert cands, lay.name
        run_layer(lay, ins, cands[0]["params"], want)
        t = scaled_mm.tactics_for(problem(lay, shapes), None, lay.attrs.get("epilogue"), True)[0]
        qc.check(qgemm.scaled_mm_pw_factory(lay, lay.attrs, 17, torch.device("cpu"), t["params"])(ins)[0], want, 1e-2)
