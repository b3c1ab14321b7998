"""Shared fixtures for the forgeexec tests: a tiny ONNX model and an in-process runner."""
from __future__ import annotations

import pytest
from .forgeexec_helpers import make_tiny_onnx

from tensorforge.cli.forgeexec.main import main

@pytest.fixture
def tiny_onnx(tmp_path):
    """Path of a tiny dynamic-batch ONNX model."""
    return make_tiny_onnx(tmp_path / "tiny.onnx")


@pytest.fixture
def cli(capsys):
    """Run main(argv) in-process; returns (exit code, stdout, stderr)."""
    def run(*argv):
        rc = main(list(argv))
        out, err = capsys.readouterr()
        return rc, out, err
    return run
