"""Triton attention kernel family (being written)."""
