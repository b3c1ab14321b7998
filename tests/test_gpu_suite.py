"""The GPU suite's tiers, checked on any machine: the `fast` tier (tests/gpu/run.sh fast) covers
every GPU test file but the full-size precision builds with a few tests each, and config sweeps run
a representative subset unless TF_GPU_FULL_SWEEP=1."""
import os
import subprocess
import sys

from tests.gpu import sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOT_FAST = {"test_precision.py"}  # full-size zoo builds only


def _collect(*args) -> list[str]:
    res = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                          *args, "tests/gpu"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return [line for line in res.stdout.splitlines() if "::" in line]


def test_fast_tier_covers_every_gpu_file_with_few_tests():
    fast, every = _collect("-m", "fast"), _collect()
    gpu = os.path.join(ROOT, "tests", "gpu")
    files = {f for f in os.listdir(gpu) if f.startswith("test_") and f.endswith(".py")}
    per_file = {f: sum(t.startswith(f"tests/gpu/{f}::") for t in fast) for f in files - NOT_FAST}
    missing = sorted(f for f, n in per_file.items() if not n)
    assert not missing, f"GPU test files with no fast test: {missing}"
    # 56 fast tests ran in 72 s on a fresh H200 (2026-12-03, session 9); + 1: the FP16-form tactic (57 in 57 s,
    # session 10); + 1: the serving Runner's batches (test_serve_gpu.py, 8 s for its 2 tests); 58 in 67 s (session
    # 13); + 1: the whole-engine FP16-form check (test_engine_fp16_form_gpu.py)
    assert len(fast) <= 59 and len(fast) < len(every) / 5, (len(fast), len(every))
    assert set(fast) <= set(every)
    # fast(param=value): only the matching parametrization is in the tier
    odd = [t for t in fast if "::test_every_config_odd_lengths[" in t]
    assert odd == ["tests/gpu/test_triton_attention.py::test_every_config_odd_lengths[dtype0-128x64x4x3]"], odd


def _levels(c):
    return c[1]


def test_pick_keeps_first_of_each_level_the_extremes_and_each_kind(monkeypatch):
    monkeypatch.setattr(sweep, "FULL", False)
    # (tile, level, kind)
    cfgs = [(64, 3, ""), (32, 3, ""), (256, 3, "split"), (128, 3, ""), (64, 4, ""), (16, 4, ""), (512, 4, ""),
            (64, 4, "serial"), (128, 4, "split")]
    got = sweep.pick(cfgs, lambda c: c[0], _levels, (lambda c: c[2] == "serial", lambda c: c[2] == "split"))
    assert got == [(64, 3, ""), (256, 3, "split"), (64, 4, ""), (16, 4, ""), (512, 4, ""), (64, 4, "serial")]
    assert sweep.pick(cfgs[:2], lambda c: c[0]) == cfgs[:2]
    monkeypatch.setattr(sweep, "FULL", True)
    assert sweep.pick(cfgs, lambda c: c[0], _levels) == cfgs


def test_real_spaces_are_cut_to_a_few_configs(monkeypatch):
    from tensorforge.kernels.triton import attention, conv, gemm
    monkeypatch.setattr(sweep, "FULL", False)
    for l3, l4 in ((conv.LEVEL3, conv.LEVEL4), (attention.LEVEL3, attention.LEVEL4)):
        got = sweep.levels(l3, l4)
        assert got[0] == l3[0] and l4[0] in got and 2 <= len(got) <= 4 < len(l3) + len(l4)
    every = gemm.configs(77, 300, 1700)
    got = sweep.tactics(every)
    assert got[0] == every[0] and len(got) <= 6 < len(every)
    assert any(sweep.split_k(t) for t in got) and any(sweep.serial_k(t) for t in got)
    cands = [{"source": "aten", "name": "gemm_addmm", "params": {}}] + every
    cut = sweep.cut_candidates(lambda *a, **k: cands)("layer", "cuda")
    assert cut[0] == cands[0] and [t for t in cut if t["source"] == "triton"] == got
