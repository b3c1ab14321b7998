"""aten "scaled_mm" family (FP8 GEMM through torch._scaled_mm: cuBLASLt on CUDA, oneDNN on this CPU
build): the tactics offered per problem, and each tactic's runner against the fused op's reference
on odd shapes (M odd; cuBLASLt wants K and N multiples of 16). tests/gpu/test_quant_kernels_gpu.py
runs the same cases on CUDA."""

import pytest
import torch

from tensorforge.kernels.aten import scaled_mm
from tensorforge.kernels.quant_gemm import problem

from . import qgemm_cases as qc

F8 = qc.F8
HAS_CPU_SCALED_MM = hasattr(torch, "_scaled_mm")
VARIANTS = {
    "per_channel_bias": {},
    "per_tensor_bias": {"per_channel": False},
    "per_tensor_no_bias": {"per_channel": False, "bias": False},
    "gelu": {"epi": "gelu"},
    "residual_float": {"epi": "relu_res", "residual": "float32"},
    "residual_fp8": {"epi": "relu_res", "residual": F8},
    "out_q_fp8": {"out_q": F8},
    "out_q_fp8_per_tensor": {"out_q": F8, "per_channel": False},
    "residual_int8_out_int8": {"epi": "relu_res", "residual": "int8", "out_q": "int8"},
}
SHAPES = [("fused.QGemm", (37,), 48, 80), ("fused.QMatMul", (3, 7), 32, 64)]


def tactics(lay, shapes, rowwise=True):
    return scaled_mm.tactics_for(problem(lay, shapes), lay.attrs.get("out_q"), lay.attrs.get("epilogue"), rowwise)


def run_all(typ, lead, n, k, variant, device="cpu", generated=False):
    """Every tactic offered for the layer vs the reference (generated: also the triton:scaled_mm_pw
    variants, whose follow-up is a generated kernel); returns the tactics run."""
    from tensorforge.kernels.triton import qgemm
    lay, shapes, attrs, ins = qc.make(typ, F8, lead, n, k, device=device, **VARIANTS[variant])
    want = qc.reference(lay, ins)
    ts = tactics(lay, shapes)
    assert ts
    runs = [(t, scaled_mm.scaled_mm_factory) for t in ts]
    runs += [(t, qgemm.scaled_mm_pw_factory) for t in qgemm.with_followup(lay, ts)] if generated else []
    for t, make in runs:
        got = make(lay, attrs, 17, torch.device(device), t["params"])(ins)[0]
        qc.check(got, want, 2e-3 if t["params"]["mm_out"] == "float32" else 1e-2)
    return ts


@pytest.mark.skipif(not HAS_CPU_SCALED_MM, reason="torch without _scaled_mm")
@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("shape", SHAPES, ids=["gemm", "matmul"])
def test_every_tactic_matches_reference(shape, variant):
    run_all(*shape, variant)


def test_tactics_offered():
    lay, shapes, _, _ = qc.make("fused.QGemm", F8, (37,), 48, 80)
    ts = tactics(lay, shapes)
    assert [t["params"]["scale"] for t in ts] == ["rowwise", "rowwise", "rowwise", "post"]
    assert ts[1]["params"]["fast_accum"] == 1 and all("level" not in t for t in ts[:2])
    assert all(t["level"] == 3 for t in ts[2:])
    assert [t["params"]["scale"] for t in tactics(lay, shapes, rowwise=False)] == ["post", "post"]
    lay, shapes, _, _ = qc.make("fused.QGemm", F8, (37,), 48, 80, per_channel=False, out_q=F8)
    direct = [t for t in tactics(lay, shapes) if t["params"]["mm_out"] == F8]
    assert len(direct) == 1 and direct[0]["params"]["scale"] == "tensorwise"


@pytest.mark.parametrize("case", ["k_unaligned", "n_unaligned", "int8", "zero_point"])
def test_declined(case):
    n, k = (48, 72) if case == "k_unaligned" else (40, 80) if case == "n_unaligned" else (48, 80)
    lay, shapes, attrs, _ = qc.make("fused.QGemm", "int8" if case == "int8" else F8, (37,), n, k)
    if case == "zero_point":
        attrs["w_zp"] = 1
    assert tactics(lay, shapes) == []


def test_no_candidates_on_cpu():
    lay, shapes, _, _ = qc.make("fused.QGemm", F8, (37,), 48, 80)
    assert scaled_mm.scaled_mm_candidates(lay, shapes, torch.device("cpu")) == []
