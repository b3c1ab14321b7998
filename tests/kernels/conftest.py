import pytest


@pytest.fixture
def interpret(monkeypatch):
    """Run Triton kernels in its CPU interpreter (set before the first launch)."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")
