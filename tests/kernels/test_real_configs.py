"""The configs an H200 build takes (every level-3 one of each family), not only the interpreter tests'
small tiles, give the references' results in Triton's interpreter: big tiles over small, odd problems
exercise the masks, EVEN_K paths, grouped orders and split-K of the code the GPU runs.
(tests/kernels/sm90_compile.py compiles the same configs for sm90.)"""
import pytest
import torch

from tensorforge.kernels.triton import conv, dwconv, gemm, qconv, qgemm, se

from . import cases
from . import test_triton_conv as tconv
from . import test_triton_dwconv as tdw
from . import test_triton_gemm as tgemm
from . import test_triton_qconv as tqconv
from . import test_triton_qgemm as tqgemm
from . import test_triton_se as tse


def _level3(tactics):
    return [t["params"] for t in tactics if t.get("level", 3) == 3]


@cases.interpreter_only
def test_conv_family_configs(interpret):
    for cfg, level in conv.configs(64, 128, 4 * 14 * 14):
        if level == 3:
            tconv.check_cases("cpu", torch.float16, conv.tactic(cfg)["params"])
    for cfg, level in dwconv.configs(32):
        if level == 3:
            tdw.check_cases("cpu", torch.float16, dwconv.tactic(cfg)["params"])


@cases.interpreter_only
@pytest.mark.parametrize("qtype", ["int8", tqconv.F8])
def test_qconv_configs(interpret, qtype):
    for cfg, level in qconv.qconv_configs(64, 128, 4 * 14 * 14):
        if level == 3:
            tqconv.check_cases("cpu", qtype, qconv.tactic(cfg)["params"])


@cases.interpreter_only
def test_se_configs(interpret):
    for p in _level3(se.configs(64, 256, 56 * 56)) + _level3(se.configs(8, 64, 7 * 7)):
        tse.check_cases("cpu", torch.float16, p)


@cases.interpreter_only
@pytest.mark.parametrize("qtype", ["int8", tqgemm.F8])
def test_qgemm_configs(interpret, qtype):
    for m in (37, 4096):
        for p in _level3(qgemm.configs(m, 768, 768)):
            for variant in ("per_channel_bias", "residual_quantized", "out_q"):
                tqgemm.run_case("fused.QGemm", (45,), 40, 96, qtype, variant, params=p)


@cases.interpreter_only
def test_gemm_configs(interpret):
    for m in (4096, 128):  # large-M tiles; small-M tiles and serial split-K
        for p in _level3(gemm.configs(m, 768, 3072)):
            for i, (typ, attrs, ins) in enumerate(tgemm.gemm_cases("cpu", torch.float16)):
                if i < 4:
                    tgemm.check(typ, attrs, ins, p, torch.float16)
