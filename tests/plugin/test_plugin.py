"""Plugins: registration, inference, reference checking, selection, engine round trip, refusals."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from onnx import TensorProto, helper

import tensorforge as tf
from tensorforge import plugin

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(ROOT, "examples", "hardswish_plugin.py")


def _model(domain, op, builtin=False):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node(op, ["r"], ["h"], name="custom", domain="" if builtin else domain),
             helper.make_node("Neg", ["h"], ["y"], name="neg")]
    ops = [helper.make_opsetid("", 17)] + ([] if builtin else [helper.make_opsetid(domain, 1)])
    return helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=ops)


def _same_shape(inputs, attrs):
    return [inputs[0]]


def _register(name, **impls):
    """A plugin computing 2*x + 1 with the given {impl name: fn}."""
    p = plugin.register(name, infer=_same_shape, reference=lambda x: 2 * x + 1)
    for n, fn in impls.items():
        p.torch_impl(name=n)(fn)
    return p


def _build(model, level=3):
    return tf.Builder(tf.BuilderConfig(device="cpu", opt_level=level)).build(model)


def test_register_infer_and_run():
    _register("t1::Affine", fast=lambda x: x * 2 + 1)
    e = _build(_model("t1", "Affine"), level=0)  # level 0: the first candidate, a plugin one
    lay = next(lay for lay in e.plan.layers if lay.name == "custom")
    assert lay.tactic["source"] == "plugin" and lay.tactic["name"] == "t1.Affine/fast"
    x = torch.randn(2, 8)
    y = e.create_execution_context().infer({"x": x})["y"]
    assert torch.allclose(y, -(2 * torch.relu(x) + 1))


def test_wrong_implementation_refused(fake_timer, caplog):
    _register("t2::Affine", wrong=lambda x: x * 2, right=lambda x: 2 * x + 1)
    fake_timer.table = {"t2.Affine/wrong": 0.1, "t2.Affine/right": 0.5, "reference": 1.0}
    e = _build(_model("t2", "Affine"))
    lay = next(lay for lay in e.plan.layers if lay.name == "custom")
    assert lay.tactic["name"] == "t2.Affine/right"
    assert "does not match the reference" in caplog.text and "t2.Affine/wrong" in caplog.text


def test_selection_among_implementations(fake_timer):
    _register("t3::Affine", a=lambda x: 2 * x + 1, b=lambda x: x + x + 1)
    fake_timer.table = {"t3.Affine/a": 0.9, "t3.Affine/b": 0.2, "reference": 1.0}
    lay = next(lay for lay in _build(_model("t3", "Affine")).plan.layers if lay.name == "custom")
    assert lay.tactic["name"] == "t3.Affine/b"
    fake_timer.table = {"t3.Affine/a": 0.1, "t3.Affine/b": 0.2, "reference": 1.0}
    lay = next(lay for lay in _build(_model("t3", "Affine")).plan.layers if lay.name == "custom")
    assert lay.tactic["name"] == "t3.Affine/a"


def test_precisions_declared():
    p = plugin.register("t4::Affine", infer=_same_shape, reference=lambda x: 2 * x + 1)
    p.torch_impl(name="half_only", precisions=("float16",))(lambda x: 2 * x + 1)
    lay = next(lay for lay in _build(_model("t4", "Affine"), level=0).plan.layers if lay.name == "custom")
    assert lay.tactic["name"] == "reference"  # float32 layer: the fp16-only implementation is not offered


def test_override_builtin_op(fake_timer):
    _register("t5::Affine", impl=lambda x: 2 * x + 1)
    fake_timer.table = {"t5.Affine/impl": 0.1, "reference": 1.0}  # real timings of equal work: a coin flip
    with plugin.override("t5::Affine", node="custom"):
        e = _build(_model("", "Sigmoid", builtin=True))
    lay = next(lay for lay in e.plan.layers if lay.name == "custom")
    assert (lay.type, lay.domain, lay.tactic["name"]) == ("Affine", "t5", "t5.Affine/impl")
    assert not any(lay.type == "Affine" for lay in _build(_model("", "Sigmoid", builtin=True)).plan.layers)


def test_refusals(tmp_path):
    with pytest.raises(plugin.PluginError, match="must be 'domain::OpName'"):
        plugin.register("NoDomain", infer=_same_shape, reference=lambda x: x)
    _register("t6::Affine")
    with pytest.raises(plugin.PluginError, match="registered twice"):
        _register("t6::Affine")
    with pytest.raises(plugin.PluginError, match="plugin module not found"):
        plugin.load(tmp_path / "missing.py")
    bad = tmp_path / "bad_plugin.py"
    bad.write_text("raise ValueError('oops')\n")
    with pytest.raises(plugin.PluginError, match="bad_plugin.py failed to load: ValueError: oops"):
        plugin.load(bad)
    with pytest.raises(tf.TensorforgeError, match="unsupported op 't7::Nope'"):
        _build(_model("t7", "Nope"))
    with pytest.raises(plugin.PluginError, match="exactly one of"):
        plugin.override("t6::Affine")


def test_engine_round_trip_asks_for_module(tmp_path):
    """Built with the example plugin; a fresh process loads it only with the module, and says so."""
    path = tmp_path / "p.engine"
    code = (f"import tensorforge as tf, torch, sys\n"
            f"tf.plugin.load({EXAMPLE!r})\n"
            f"from tests.plugin.test_plugin import _model\n"
            f"e = tf.Builder(tf.BuilderConfig(device='cpu', opt_level=0)).build(_model('example', 'HardSwish'))\n"
            f"e.save({str(path)!r})\n")
    env = {**os.environ, "PYTHONPATH": ROOT}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=env, timeout=300)
    r = subprocess.run([sys.executable, "-c", f"import tensorforge as tf; tf.Engine.load({str(path)!r})"],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode != 0 and "EngineFormatError" in last
    assert "plugin op 'example::HardSwish'" in last and "load its module first" in last
    assert "hardswish_plugin.py" in last
    plugin.load(EXAMPLE)
    e = tf.Engine.load(path)
    x = torch.randn(2, 8)
    y = e.create_execution_context().infer({"x": x})["y"]
    assert torch.allclose(y, -torch.nn.functional.hardswish(torch.relu(x)), atol=1e-6)


def test_host_launched_triton_impl_needs_module(monkeypatch):
    """A triton_impl (a host launch function) is offered on CUDA or under Triton's interpreter and is
    host code: the engine records the plugin so that loading asks for its module."""
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)  # the CPU session sets it (tests/conftest.py)
    p = plugin.register("t8::Affine", infer=_same_shape, reference=lambda x: 2 * x + 1)
    p.triton_impl(lambda x: 2 * x + 1, name="launch")
    lay = next(lay for lay in _build(_model("t8", "Affine"), level=0).plan.layers if lay.name == "custom")
    assert lay.tactic["name"] == "reference"  # CPU without the interpreter: not offered
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    e = _build(_model("t8", "Affine"), level=0)
    lay = next(lay for lay in e.plan.layers if lay.name == "custom")
    assert lay.tactic["name"] == "t8.Affine/launch" and lay.tactic["params"]["kind"] == "triton"
    assert e.plan.meta["plugins"]["t8::Affine"]["layers"] == {"custom": "t8.Affine/launch"}


def test_refit_replays_overrides():
    """An engine built with an override refits (outside the override) to a fresh build's weights."""
    import numpy as np
    from onnx import numpy_helper
    _register("t9::Affine", impl=lambda x: 2 * x + 1)
    m = _model("", "Sigmoid", builtin=True)
    w = numpy_helper.from_array(np.arange(16, dtype=np.float32).reshape(2, 8), "w")
    m.graph.initializer.append(w)
    m.graph.node[2].input.append("w")
    m.graph.node[2].op_type = "Add"
    with plugin.override("t9::Affine", node="custom"):
        e = tf.Builder(tf.BuilderConfig(device="cpu", opt_level=0, refit=True)).build(m)
    r = tf.Refitter(e)
    r.set_named_weights("w", np.ones((2, 8), np.float32))
    r.refit()
    assert torch.equal(e.weights["w"], torch.ones(2, 8))
    assert next(lay for lay in e.plan.layers if lay.name == "custom").type == "Affine"
