"""Triton pool kernel family (being written)."""
