"""Imports the kernel-family modules of the triton source so they register their tactics
(each family: a pure-python module with @offers/@variant, and a *_kernel module with the
@triton.jit code that is imported only when a runner is made)."""
from . import attention, conv, gemm, pool  # noqa: F401,E402
