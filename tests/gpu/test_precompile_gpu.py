"""builder.precompile on the GPU: a build's Triton kernels compiled ahead on a thread pool (Triton's
AsyncCompileMode), then found compiled by tactic timing. Each build runs in a fresh process with an
empty Triton cache (a process keeps compiled kernels in memory). The engine agrees with ONNX Runtime;
build times with and without the head start are printed (tests assert no timings), with the number
of kernels the timing still compiled itself (0 when every warm-up matched the timing's launch)."""
import json
import os
import subprocess
import sys

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = r"""
import json, sys, threading, time
import numpy as np
import triton.compiler
import tensorforge as tf
from tensorforge import zoo
from tensorforge.testing import run_ort
name = sys.argv[1]
in_timing = []
real = triton.compiler.compile
def counting(*a, **k):
    if not threading.current_thread().name.startswith("tf-compile"):
        in_timing.append(1)
    return real(*a, **k)
triton.compiler.compile = counting  # what a JIT function's first launch binds (jit.create_binder)
t0 = time.perf_counter()
eng = tf.Builder(tf.BuilderConfig(device="cuda", fp16=True)).build(zoo.get_model(name))
build_s = time.perf_counter() - t0
feed = zoo.random_inputs(name, 2, seed=3)
got = eng.create_execution_context().infer(feed)
err = max(float(np.abs(got[k].float().cpu().numpy() - r).max() / max(1.0, float(np.abs(r).max())))
          for k, r in run_ort(zoo.get_model(name), feed).items())
sel = eng.plan.meta["tactic_selection"]
print("RESULT " + json.dumps({"build_s": build_s, "in_timing": len(in_timing), "err": err,
                              **{k: sel.get(k) for k in ("compiled_ahead", "compile_threads", "compile_ahead_s")}}))
"""


def _build(name, threads, tmp_path):
    env = dict(os.environ, TF_COMPILE_THREADS=str(threads), TRITON_CACHE_DIR=str(tmp_path / f"t{threads}"),
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-c", SCRIPT, name], env=env, capture_output=True, text=True, timeout=400)
    line = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
    assert r.returncode == 0 and line, r.stderr[-3000:]
    return json.loads(line[-1][len("RESULT "):])


@pytest.mark.fast
def test_compiled_ahead_then_timed(tmp_path):
    ahead = _build("mobilenetv2_small", 4, tmp_path)
    assert ahead["compiled_ahead"] and ahead["compiled_ahead"] > 0, ahead
    assert ahead["err"] < 2e-2, ahead
    print(f"\nmobilenetv2_small FP16 level 3, cold Triton cache: {ahead['build_s']:.1f} s, "
          f"{ahead['compiled_ahead']} candidates compiled ahead on {ahead['compile_threads']} threads in "
          f"{ahead['compile_ahead_s']:.1f} s, {ahead['in_timing']} kernels still compiled during timing")


@pytest.mark.parametrize("name", ["mobilenetv2_small", "resnet50_small"])
def test_build_with_and_without_the_head_start(name, tmp_path):
    ahead = _build(name, 8, tmp_path)
    serial = _build(name, 0, tmp_path)
    assert serial["compiled_ahead"] is None and max(ahead["err"], serial["err"]) < 2e-2, (ahead, serial)
    print(f"\n{name} FP16 level 3, cold Triton cache: {ahead['build_s']:.1f} s with {ahead['compile_threads']} "
          f"compile threads ({ahead['compiled_ahead']} candidates ahead in {ahead['compile_ahead_s']:.1f} s; "
          f"{ahead['in_timing']} kernels still compiled during timing, {serial['in_timing']} without the head "
          f"start), {serial['build_s']:.1f} s without")
