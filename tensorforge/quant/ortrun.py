"""ONNX Runtime (CPU) runs of a model with some of its tensors as extra outputs: the calibration's and
the bias correction's observer; its errors (the user's data does not fit the model) in one line."""
from __future__ import annotations

import onnx
from onnx import helper

from ..errors import TensorforgeError


def session(model, tensors, basic: bool = False):
    """An ORT CPU session of `model` that also outputs `tensors` (basic: ORT_ENABLE_BASIC optimizations)."""
    import onnxruntime as ort
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    m.graph.output.extend(helper.make_empty_tensor_value_info(t) for t in tensors if t not in have)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if basic:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    try:
        return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - ORT's own exception types: one line for the user
        raise TensorforgeError(f"ONNX Runtime cannot load the model for calibration: {_first_line(e)}") from None


def run(sess, names, feed) -> list:
    """sess.run(names, feed), a data / model mismatch as a one-line error."""
    try:
        return sess.run(list(names), feed)
    except Exception as e:  # noqa: BLE001
        shapes = ", ".join(f"{k} {getattr(v, 'dtype', '?')}{list(getattr(v, 'shape', []))}" for k, v in feed.items())
        raise TensorforgeError(f"the calibration data does not fit the model ({shapes}): {_first_line(e)}") from None


def _first_line(e: Exception) -> str:
    text = " ".join(str(e).split())
    return text[:300] + ("..." if len(text) > 300 else "")
