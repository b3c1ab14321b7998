"""bench/if_runtime.py on the CPU: the zoo model with a run-time If, its folded twin and the ORT rows
are built, checked against ONNX Runtime and timed by the same code the GPU run uses."""
import json
import os
import sys

import numpy as np
import onnx

import tensorforge as tf
from tensorforge import zoo
from tensorforge.testing import run_ort

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from bench import if_runtime  # noqa: E402


def test_runtime_if_wrapper_matches_ort_for_both_conditions():
    m = if_runtime.with_runtime_if(zoo.get_model("mobilenetv2_small"))
    onnx.checker.check_model(m)
    eng = tf.Builder(tf.BuilderConfig(device="cpu")).build(m)
    assert any(lay.type == "If" for lay in eng.plan.layers)  # not folded: the condition is an input
    ctx = eng.create_execution_context()
    x = zoo.random_inputs("mobilenetv2_small")
    outs = {}
    for flag in (True, False):
        feed = dict(x, use_softmax=np.array(flag))
        got, ref = ctx.infer(feed), run_ort(m, feed)
        np.testing.assert_allclose(got["if_out"].numpy(), ref["if_out"], rtol=1e-4, atol=1e-5)
        outs[flag] = ref["if_out"]
    np.testing.assert_allclose(outs[True].sum(-1), 1.0, rtol=1e-5)  # softmax branch
    assert not np.allclose(outs[False].sum(-1), 1.0)  # the logits
    folded = if_runtime.fold_input(m, "use_softmax", np.array(True))
    feng = tf.Builder(tf.BuilderConfig(device="cpu")).build(folded)
    assert not any(lay.type == "If" for lay in feng.plan.layers)


def test_cpu_run_of_the_benchmark(tmp_path):
    out = tmp_path / "if.json"
    rc = if_runtime.main(["zoo:mobilenetv2_small", "--device", "cpu", "--iters", "2", "--opt-level", "0",
                          "--json", str(out)])
    res = json.loads(out.read_text())
    assert rc == 0, res["rows"]

    def row(part):
        return next(r for r in res["rows"] if part in r["runner"])
    graph = row("use_cuda_graph")
    assert graph["left_graph"] == ["post_if"] and graph["cosine"] > 0.9999
    assert row("eager")["cosine"] > 0.9999
    folded = row("folded")
    assert folded["cosine"] > 0.9999 and folded["wall_ms"] > 0 and folded["timing"] == "cpu"
    assert row("CPUExecutionProvider")["wall_ms"] > 0
    assert "| tensorforge, run-time If, use_cuda_graph |" in res["markdown"]
