"""Test helpers: build tiny ONNX models, run them in tensorforge and ONNX Runtime, compare."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

ORT_MAX_IR = 10  # onnxruntime 1.31 reads IR <= 13; keep generated models conservative


def make_model(nodes, inputs, outputs, initializers=(), opset=17, ir_version=8, name="test"):
    """A ModelProto from NodeProtos; inputs/outputs are (name, elem_type, shape) or ValueInfoProtos."""
    def vi(x):
        if isinstance(x, onnx.ValueInfoProto):
            return x
        n, t, s = x
        return helper.make_tensor_value_info(n, t, s)
    g = helper.make_graph(list(nodes), name, [vi(x) for x in inputs], [vi(x) for x in outputs],
                          list(initializers))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir_version)


def run_ort(model: onnx.ModelProto, feed: dict, basic: bool = False) -> dict:
    """ONNX Runtime on CPU; basic=True limits graph optimizations to the basic level (ORT's extended
    fusions compute FP8 Q/DQ models differently from the ONNX definition: the fake-quant reference
    runs without them), and to none for a model with FP16 / BF16 constants (ORT 1.32's basic
    rewrites put Inf into FP16 Q/DQ models: a depthwise conv of EfficientNet-Lite0)."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if basic:
        low = any(i.data_type in (onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16) for i in model.graph.initializer)
        so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_DISABLE_ALL if low else
                                       ort.GraphOptimizationLevel.ORT_ENABLE_BASIC)
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feed)))


def run_tf(model, feed: dict, config=None, device="cpu") -> dict:
    """Build (CPU by default) and run once; returns numpy outputs."""
    from . import Builder, BuilderConfig
    cfg = config or BuilderConfig(device=device)
    if config is None:
        cfg.device = device
    eng = Builder(cfg).build(model)
    out = eng.create_execution_context().infer(feed)
    return {k: v.detach().float().cpu().numpy() if v.dtype.is_floating_point and v.dtype != __import__("torch").float64
            else v.detach().cpu().numpy() for k, v in out.items()}


def assert_close(got: dict, ref: dict, rtol=1e-5, atol=1e-5):
    """Every reference output present, same shape, close (NaN positions equal)."""
    for k, r in ref.items():
        assert k in got, f"missing output {k}"
        g = got[k]
        assert tuple(g.shape) == tuple(np.shape(r)), f"{k}: shape {g.shape} != {np.shape(r)}"
        if r.dtype == np.bool_ or np.issubdtype(r.dtype, np.integer):
            np.testing.assert_array_equal(g.astype(r.dtype), r, err_msg=k)
        else:
            np.testing.assert_allclose(g.astype(np.float64), r.astype(np.float64), rtol=rtol, atol=atol,
                                       equal_nan=True, err_msg=k)


def check_against_ort(model, feed, rtol=1e-5, atol=1e-5, **kw) -> dict:
    """Run tensorforge and ORT on the same feed and assert the outputs agree."""
    ref = run_ort(model, feed)
    got = run_tf(model, feed, **kw)
    assert_close(got, ref, rtol, atol)
    return got


def rand(shape, dtype=np.float32, seed=0, lo=-1.0, hi=1.0):
    """Random (never all-zero) test data."""
    rng = np.random.default_rng(seed)
    if np.issubdtype(np.dtype(dtype), np.integer):
        return rng.integers(int(lo), int(hi) + 1, size=shape).astype(dtype)
    if np.dtype(dtype) == np.bool_:
        return rng.random(shape) > 0.5
    return rng.uniform(lo, hi, size=shape).astype(dtype)


def scaled_weights(proto, seed=1):
    """(a copy of the ONNX model with every refittable initializer scaled by U(0.5, 1.5), {name: array}):
    new weights for the same graph, to test refit against a fresh build."""
    import onnx
    from onnx import numpy_helper

    from .builder.refit import refittable
    rng = np.random.default_rng(seed)
    new = onnx.ModelProto()
    new.CopyFrom(proto)
    arrays = {}
    for i, t in enumerate(new.graph.initializer):
        if refittable(t):
            a = numpy_helper.to_array(t)
            b = (a * rng.uniform(0.5, 1.5, a.shape)).astype(a.dtype)
            arrays[t.name] = b
            new.graph.initializer[i].CopyFrom(numpy_helper.from_array(b, t.name))
    return new, arrays


def refit_to(engine, arrays, fresh) -> None:
    """Refit `engine` with `arrays` ({name: array}) and check that every weight is now bitwise the
    weight of `fresh`, an engine built from the model with those arrays (scaled_weights)."""
    import torch

    from .builder.refit import Refitter
    r = Refitter(engine)
    for k, v in arrays.items():
        r.set_named_weights(k, v)
    r.refit()
    for k, w in fresh.weights.items():
        assert torch.equal(engine.weights[k], w), k
