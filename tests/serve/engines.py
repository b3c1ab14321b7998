"""Small engines for the serving tests, built on the CPU (cached per session in a temp folder)."""
import os
import tempfile

import numpy as np
from onnx import TensorProto as T
from onnx import helper as h

import tensorforge as tf
from tensorforge.testing import make_model

_DIR = tempfile.mkdtemp(prefix="tf-serve-")
_CACHE = {}


def _profile(shapes):
    p = tf.OptimizationProfile()
    for name, mmm in shapes.items():
        p.set_shape(name, *mmm)
    return p


def _build(key, model, shapes):
    if key not in _CACHE:
        eng = tf.Builder(tf.BuilderConfig(device="cpu", profiles=[_profile(shapes)] if shapes else [])).build(model)
        path = os.path.join(_DIR, f"{key}.engine")
        eng.save(path)
        _CACHE[key] = path
    return _CACHE[key]


def zoo_engine(name="resnet50_small", lo=1, opt=8, hi=16):
    """A zoo image model with a batch profile [lo, hi]."""
    s = (3, 64, 64)
    return _build(f"{name}_{lo}_{hi}", f"zoo:{name}", {"input": ((lo, *s), (opt, *s), (hi, *s))})


def div_engine(lo=1, hi=8):
    """y = a // b on int64 [N, 4]: a zero in b makes the engine itself fail (ZeroDivisionError)."""
    m = make_model([h.make_node("Div", ["a", "b"], ["y"])],
                   [("a", T.INT64, ["N", 4]), ("b", T.INT64, ["N", 4])], [("y", T.INT64, ["N", 4])])
    r = ((lo, 4), (min(4, hi), 4), (hi, 4))
    return _build(f"div_{lo}_{hi}", m, {"a": r, "b": r})


def seq_engine():
    """y = x * 2 on float32 [N, L] with L in [2, 8]: requests of different L never share a call."""
    m = make_model([h.make_node("Add", ["x", "x"], ["y"])], [("x", T.FLOAT, ["N", "L"])],
                   [("y", T.FLOAT, ["N", "L"])])
    return _build("seq", m, {"x": ((1, 2), (4, 4), (8, 8))})


def static_engine():
    """A fixed-shape engine (no batch axis): every request is its own call."""
    m = make_model([h.make_node("Relu", ["x"], ["y"])], [("x", T.FLOAT, [2, 3])], [("y", T.FLOAT, [2, 3])])
    return _build("static", m, {})


def images(batch, seed):
    return np.random.default_rng(seed).uniform(-1, 1, (batch, 3, 64, 64)).astype(np.float32)
