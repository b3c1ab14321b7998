"""Triton tactic "fp16_form_pw" on CUDA: the quantized conv cases (NCHW and NHWC inputs, residuals, output Q)
through cuDNN FP16 + the generated follow-up kernel vs the exact quantized reference, and in an NHWC chain."""
import pytest

from tests.kernels import test_triton_fp16_form as F


@pytest.mark.fast(qtype="int8", nhwc=True)
@pytest.mark.parametrize("qtype", ["int8", "float8e4m3fn"])
@pytest.mark.parametrize("nhwc", [False, True])
def test_qconv_cases_on_cuda(qtype, nhwc):
    params = {"nhwc_ok": True, "weight_layout": "channels_last"} if nhwc else {}
    F.check_qconv_cases("cuda", qtype, **params)
