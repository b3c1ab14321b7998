"""Generated kernels run in triton's CPU interpreter (when triton is installed and there is no GPU;
on CUDA machines tests/gpu/test_triton_kernels.py runs the same checks compiled)."""
import pytest
import torch

from . import cases, kernel_checks

pytestmark = [cases.interpreter_only, pytest.mark.usefixtures("interpret")]


@pytest.mark.parametrize("check", ["pointwise", "softmax", "norms", "reduce", "epilogue"])
def test_kernel_matches_reference(check):
    getattr(kernel_checks, f"check_{check}")("cpu", torch.float32)


def test_fp16_pointwise_and_norms():
    kernel_checks.check_pointwise("cpu", torch.float16)
    kernel_checks.check_norms("cpu", torch.float16)
