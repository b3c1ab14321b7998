"""Triton gemm kernel family (being written)."""
