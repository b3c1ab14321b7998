"""Built-in model zoo: real architectures with random weights, generated offline (`zoo:NAME`).

Models are built with onnx.helper (opset 17, IR 8, dynamic batch "N"), deterministically from a
seed; no torch, no files, no network. Generated models are cached in-process.
"""
from __future__ import annotations

import copy as _copy

import numpy as np
import onnx

from ..errors import TensorforgeError
from .builder import GraphBuilder
from .models import CATALOGUE, ZooModel

PREFIX = "zoo:"
_CACHE: dict[tuple[str, int], onnx.ModelProto] = {}

__all__ = ["list_models", "get_model", "generate", "is_zoo", "load", "input_specs",
           "output_specs", "random_inputs", "clear_cache", "PREFIX"]


def list_models() -> list[str]:
    """Names of all zoo models (full-size ones first, then the *_small test variants)."""
    return list(CATALOGUE)


def is_zoo(spec) -> bool:
    """True for model specs of the form "zoo:NAME"."""
    return isinstance(spec, str) and spec.startswith(PREFIX)


def _entry(name) -> ZooModel:
    if isinstance(name, onnx.ModelProto):
        name = name.graph.name
    key = name[len(PREFIX):] if is_zoo(name) else name
    if key not in CATALOGUE:
        raise TensorforgeError(
            f"unknown zoo model {key!r}; available: {', '.join(CATALOGUE)}")
    return CATALOGUE[key]


def generate(name: str, seed: int = 0) -> onnx.ModelProto:
    """Build a fresh model, bypassing the cache."""
    entry = _entry(name)
    b = GraphBuilder(entry.name, int(seed), const_nodes=entry.const_nodes)
    entry.fn(b, **entry.kwargs)
    return b.build(doc=f"tensorforge zoo: {entry.doc} (random weights, seed {int(seed)})")


def get_model(name: str, seed: int = 0, copy: bool = True) -> onnx.ModelProto:
    """The zoo model `name` ("resnet50" or "zoo:resnet50"), built once per process.

    Returns a private copy that the caller may edit; copy=False returns the cached instance
    itself (cheaper for big models; the caller must not modify it).
    """
    key = (_entry(name).name, int(seed))
    if key not in _CACHE:
        _CACHE[key] = generate(key[0], key[1])
    if not copy:
        return _CACHE[key]
    model = onnx.ModelProto()
    model.CopyFrom(_CACHE[key])
    return model


def load(spec: str) -> onnx.ModelProto:
    """Load a "zoo:NAME" spec (seed 0)."""
    return get_model(spec)


def clear_cache() -> None:
    _CACHE.clear()


def input_specs(name) -> dict[str, tuple[str, list, tuple]]:
    """name -> (dtype, shape with "N" for the batch, value range) for each model input.

    Integer ranges are half-open: token ids lie in [0, vocab), masks in {0, 1}.
    """
    return _copy.deepcopy(_entry(name).inputs)


def output_specs(name) -> dict[str, tuple[str, list]]:
    """name -> (dtype, shape with "N" for the batch) for each model output."""
    return _copy.deepcopy(_entry(name).outputs)


def random_inputs(name_or_model_spec, batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """Random feeds for a zoo model, following input_specs.

    Floats are uniform in their range, token ids uniform in [0, vocab); attention masks are 1
    with a few trailing 0s per row (never a row of zeros).
    """
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, (dtype, shape, (lo, hi)) in _entry(name_or_model_spec).inputs.items():
        shape = [batch if d == "N" else d for d in shape]
        if "mask" in name:
            x = np.ones(shape, np.int64)
            length = shape[-1]
            for row in x.reshape(-1, length):
                pad = min(int(rng.integers(1, max(1, length // 4) + 1)), length - 1)
                row[length - pad:] = 0
        elif dtype.startswith("float"):
            x = rng.uniform(lo, hi, shape).astype(dtype)
        else:
            x = rng.integers(lo, hi, shape).astype(dtype)
            if not x.any():
                x.flat[0] = hi - 1
        feeds[name] = x
    return feeds
