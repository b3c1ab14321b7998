"""The example HardSwish plugin: replaces ONNX HardSwish in a model, matches ONNX Runtime, and its
Triton kernel runs in Triton's interpreter (CPU)."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
from onnx import TensorProto, helper

import tensorforge as tf
from tensorforge import plugin
from tensorforge.testing import run_ort

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(ROOT, "examples", "hardswish_plugin.py")


def _hardswish_model():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4, 8, 8])
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 4, 1, 1], np.eye(4, dtype=np.float32).ravel() * 3)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("HardSwish", ["c"], ["y"], name="hswish")]
    return helper.make_model(helper.make_graph(nodes, "g", [x], [y], [w]), opset_imports=[helper.make_opsetid("", 17)])


def test_example_replaces_hardswish_and_matches_ort():
    plugin.load(EXAMPLE)
    m = _hardswish_model()
    with plugin.override("example::HardSwish", op_type="HardSwish"):
        e = tf.Builder(tf.BuilderConfig(device="cpu", opt_level=0)).build(m)
    assert any(lay.tactic.get("source") == "plugin" for lay in e.plan.layers)
    x = np.random.default_rng(0).standard_normal((2, 4, 8, 8)).astype(np.float32)
    got = e.create_execution_context().infer({"x": x})["y"].numpy()
    np.testing.assert_allclose(got, run_ort(m, {"x": x})["y"], rtol=1e-5, atol=1e-6)


def _interpret(code, tmp_path):
    env = {**os.environ, "PYTHONPATH": ROOT, "TRITON_INTERPRET": "1"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=300)


def test_triton_kernel_is_device_code(tmp_path):
    """In Triton's interpreter (CPU): the Triton implementation is checked, chosen when fastest, and
    recorded as a data-only launch; the engine loads without the plugin module (on a GPU its cubin
    is stored in the engine; on the CPU inference then says the module is needed to compile it)."""
    path = tmp_path / "d.engine"
    build = (f"import torch, tensorforge as tf\nfrom tensorforge.builder import tactics\n"
             f"from tests.plugin.test_plugin import _model\ntf.plugin.load({EXAMPLE!r})\n"
             "tactics.TIMER = lambda lay, t, b: 0.1 if t['name'] == 'device_kernel' else 1.0\n"
             "e = tf.Builder(tf.BuilderConfig(device='cpu')).build(_model('example', 'HardSwish'))\n"
             "lay = next(l for l in e.plan.layers if l.name == 'custom')\n"
             "assert lay.tactic['name'] == 'device_kernel' and 'plugins' not in e.plan.meta\n"
             "assert 'src' not in lay.tactic['params'] and lay.tactic['params']['grid'] == [['cdiv', 'numel0', 1024]]\n"
             "x = torch.randn(3, 1000)[:2, :8].contiguous()\n"
             "y = e.create_execution_context().infer({'x': x})['y']\n"
             "assert torch.allclose(y, -torch.nn.functional.hardswish(torch.relu(x)), atol=1e-6)\n"
             f"e.save({str(path)!r})\nprint('ok')\n")
    r = _interpret(build, tmp_path)
    assert r.stdout.strip().endswith("ok"), r.stderr[-3000:]
    load = (f"import torch, tensorforge as tf\ne = tf.Engine.load({str(path)!r})\nprint('loaded')\n"
            "e.create_execution_context().infer({'x': torch.randn(2, 8)})\n")
    r = _interpret(load, tmp_path)
    assert r.stdout.strip() == "loaded"
    assert "plugin kernel '_hardswish_kernel' has no stored cubin here" in r.stderr
    assert "hardswish_plugin.py" in r.stderr
