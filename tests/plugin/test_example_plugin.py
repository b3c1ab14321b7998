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


def test_triton_kernel_in_interpreter():
    code = (f"import torch, tensorforge as tf\n"
            f"tf.plugin.load({EXAMPLE!r})\n"
            "impl = tf.plugin.get('example::HardSwish').impls['triton']\n"
            "x = torch.randn(3000)\n"
            "assert torch.allclose(impl.fn(x), torch.nn.functional.hardswish(x), atol=1e-6)\n"
            "print('ok')\n")
    env = {**os.environ, "PYTHONPATH": ROOT, "TRITON_INTERPRET": "1"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert r.stdout.strip().endswith("ok"), r.stderr[-2000:]
