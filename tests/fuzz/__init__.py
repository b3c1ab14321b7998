"""Fuzzers: mutated engine files, mutated ONNX models and random forgeexec flags (issue 16)."""
