"""Generated kernels run in triton's CPU interpreter (when triton is installed and there is no GPU;
on CUDA machines tests/gpu/test_triton_kernels.py runs the same checks compiled)."""
import importlib.util

import pytest
import torch

from . import kernel_checks

pytestmark = pytest.mark.skipif(importlib.util.find_spec("triton") is None or torch.cuda.is_available(),
                                reason="needs triton (interpreter) on a machine without CUDA")


@pytest.fixture(autouse=True)
def interpret(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")


@pytest.mark.parametrize("check", ["pointwise", "softmax", "norms", "reduce", "epilogue"])
def test_kernel_matches_reference(check):
    getattr(kernel_checks, f"check_{check}")("cpu", torch.float32)


def test_fp16_pointwise_and_norms():
    kernel_checks.check_pointwise("cpu", torch.float16)
    kernel_checks.check_norms("cpu", torch.float16)
