"""Every generated-kernel family compiles for sm90 (Triton + ptxas, no GPU) with the configs an H200 build
uses, within the shared-memory limit: tests/kernels/sm90_compile.py, in a fresh process."""
import importlib.util

import pytest

from . import kernel_checks


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs triton")
def test_generated_kernels_compile_for_sm90():
    kernel_checks.run_in_fresh_process("tests.kernels.sm90_compile", "main")
