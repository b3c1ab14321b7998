"""Triton conv kernel family (being written)."""
