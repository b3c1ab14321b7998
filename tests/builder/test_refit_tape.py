"""The weight tape behind refit: a refit replays the build's recorded weight calls (no pass re-runs),
bitwise; in-place writes and views replay as recorded; a changed build decision is refused."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import tensorforge as tf
from tensorforge import passes
from tensorforge.builder.refit import RefitError, model_weights
from tensorforge.ir import tape


def _cfg(**kw):
    return tf.BuilderConfig(opt_level=0, device="cpu", **kw)


def _record(fn, **sources):
    """(stored tape, build-time outputs) of fn(**sources) recorded like a build."""
    with tape.recording(set(sources)) as rec:
        for k, t in sources.items():
            tape.mark_source(k, t)
        outs = fn(**sources)
    return json.loads(json.dumps(tape.finish(rec, outs, stripped=True))), outs


def test_tape_replays_in_place_writes_views_and_literals():
    def build(w, b):
        m = torch.zeros(4, 6)  # a literal written with weight data (a GEMM merge's pattern)
        m[:, :3] = w
        m[:, 3:] = w * 2
        v = b.view(2, 2)
        v.mul_(3)  # in place on a view of a source: the caller's array must stay untouched on replay
        return {"m": m, "b": b.double().sqrt().to(torch.float16), "lit": torch.ones(3)}
    w, b = torch.rand(4, 3), torch.rand(4)
    stored, _ = _record(build, w=w, b=b)
    w2, b2 = torch.rand(4, 3), torch.rand(4)
    b2_before = b2.clone()
    got = tape.replay(stored, {"w": w2, "b": b2})
    want = build(w2.clone(), b2.clone())
    assert torch.equal(b2, b2_before)
    for k in want:
        assert got[k].dtype == want[k].dtype and torch.equal(got[k], want[k]), k


def test_tape_guard_refuses_a_changed_decision():
    def build(w):
        return {"y": w * 2 if bool((w > 0).all()) else w}
    stored, _ = _record(build, w=torch.rand(5) + 0.1)
    assert torch.equal(tape.replay(stored, {"w": torch.ones(5)})["y"], torch.full((5,), 2.0))
    where = r"test_refit_tape.py:\d+ \(build\) \(True at build, False now\)"
    with pytest.raises(tape.GuardError, match=f"decided on at .*{where}"):
        tape.replay(stored, {"w": -torch.ones(5)})


def test_refit_runs_no_pass(monkeypatch):
    """ResNet refit with the frontend and passes made unusable: the tape alone gives a fresh build's weights."""
    engine = tf.Builder(_cfg(refit=True)).build("zoo:resnet50_small")
    arrays = {k: (v * 1.25).astype(v.dtype) for k, v in model_weights("zoo:resnet50_small").items()}
    proto = onnx.load_model_from_string(tf.frontend.load_model_proto("zoo:resnet50_small").SerializeToString())
    for i, t in enumerate(proto.graph.initializer):
        if t.name in arrays:
            proto.graph.initializer[i].CopyFrom(numpy_helper.from_array(arrays[t.name], t.name))
    fresh = tf.Builder(_cfg()).build(proto)

    def boom(*a, **k):
        raise AssertionError("refit re-ran the optimizer")
    monkeypatch.setattr(passes, "run_pipeline", boom)
    monkeypatch.setattr(tf.frontend, "load", boom)
    r = tf.Refitter(engine)
    r.pending = arrays
    r.refit()
    assert all(torch.equal(engine.weights[k], w) for k, w in fresh.weights.items())


def _twin_model(c1, c2):
    """y1 = x + c1, y2 = x * c2: equal constants are shared by CSE, except refittable weights."""
    g = helper.make_graph(
        [helper.make_node("Add", ["x", "c1"], ["y1"]), helper.make_node("Mul", ["x", "c2"], ["y2"])], "twin",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y1", TensorProto.FLOAT, [2, 4]),
         helper.make_tensor_value_info("y2", TensorProto.FLOAT, [2, 4])],
        [numpy_helper.from_array(c1, "c1"), numpy_helper.from_array(c2, "c2")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _weights(engine):
    return sum(t.kind == "weight" for t in engine.plan.tensors.values())


def test_equal_weights_stay_apart_in_a_refittable_engine():
    """A build shares equal constants; a refittable one keeps weights apart (a refit may make them differ)."""
    c = np.arange(1, 5, dtype=np.float32)
    assert _weights(tf.Builder(_cfg()).build(_twin_model(c, c.copy()))) == 1
    engine = tf.Builder(_cfg(refit=True)).build(_twin_model(c, c.copy()))
    assert _weights(engine) == 2
    r = tf.Refitter(engine)
    r.pending = {"c1": c * 3, "c2": c * 4}
    r.refit()
    x = torch.ones(2, 4)
    out = engine.create_execution_context().infer({"x": x})
    assert torch.equal(out["y1"], x + torch.from_numpy(c * 3)) and torch.equal(out["y2"], x * torch.from_numpy(c * 4))


def _resize_model(scales):
    g = helper.make_graph(
        [helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest")], "up",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(scales, "scales")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_refit_refuses_weights_that_change_a_shape():
    """Resize scales are float initializers (refittable by type) that decide output shapes: new values
    that keep the shapes refit; others are refused naming where the build read them, nothing installed."""
    scales = np.array([1, 1, 2, 2], np.float32)
    engine = tf.Builder(_cfg(refit=True)).build(_resize_model(scales))
    r = tf.Refitter(engine)
    r.pending = {"scales": scales.copy()}
    r.refit()
    before = {k: w.clone() for k, w in engine.weights.items()}
    r.pending = {"scales": np.array([1, 1, 3, 3], np.float32)}
    with pytest.raises(RefitError, match=r"decided on at ops/\w+\.py:\d+ .*rebuild instead"):
        r.refit()
    assert all(torch.equal(engine.weights[k], w) for k, w in before.items())


def test_damaged_tape_is_refused_in_one_line():
    engine = tf.Builder(_cfg(refit=True)).build("zoo:resnet50_small")
    arrays = model_weights("zoo:resnet50_small")
    ops = engine.plan.meta["refit"]["tape"]["ops"]
    saved, ops[5][1] = ops[5][1], [{"n": 10**9}]  # a node nothing made
    r = tf.Refitter(engine)
    r.pending = arrays
    with pytest.raises(RefitError, match=r"weight tape cannot be replayed \(KeyError"):
        r.refit()
    ops[5][1], ops[5][0] = saved, "torch:save"  # a function a refit never calls
    with pytest.raises(RefitError, match="a function a refit does not call: 'torch:save'"):
        r.refit()
