"""Compiled Triton kernels stored in the engine (CUDA): a fresh process loads the engine and runs it
from the stored cubins through the CUDA driver API: no Triton import, nothing written to the Triton
cache, the same outputs as the Triton-launched engine in the builder's process."""
import json
import os
import subprocess
import sys

import pytest
import torch

import tensorforge as tf
from tensorforge.kernels.triton import binaries
from tensorforge.runtime.engine import Engine

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRITON_ONLY = ["-CUBLAS", "-CUBLAS_LT", "-CUDNN", "-ATEN"]  # leaves triton tactics, then the reference

CHILD = r'''
import json, os, sys, time
t0 = time.perf_counter()
import torch
from tensorforge.runtime import Engine
eng_path, feed_path, out_path = sys.argv[1:4]
t1 = time.perf_counter()
eng = Engine.load(eng_path)
load_s = time.perf_counter() - t1
feed = torch.load(feed_path)
ctx = eng.create_execution_context()
out = ctx.infer(feed)
torch.cuda.synchronize()
first_s = time.perf_counter() - t1
ctx2 = eng.create_execution_context(use_cuda_graph=True)
for _ in range(2):
    out_g = ctx2.infer(feed)
torch.save({k: v.cpu() for k, v in out.items()}, out_path)
torch.save({k: v.cpu() for k, v in out_g.items()}, out_path + ".graph")
print(json.dumps({"load_s": load_s, "first_s": first_s, "triton": "triton" in sys.modules,
                  "stored": len(eng.binaries()), "used": len(eng.kernel_store.loaded)}))
'''


def _profile(names, mn, opt, mx):
    p = tf.OptimizationProfile()
    for n in names:
        p.set_shape(n, mn, opt, mx)
    return p


def _child(tmp_path, eng_path, feed):
    torch.save(feed, tmp_path / "feed.pt")
    cache = tmp_path / "fresh_cache"
    cache.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update(TRITON_CACHE_DIR=str(cache), PYTHONPATH=ROOT)
    r = subprocess.run([sys.executable, "-c", CHILD, str(eng_path), str(tmp_path / "feed.pt"),
                        str(tmp_path / "out.pt")], capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    info = json.loads(r.stdout.strip().splitlines()[-1])
    assert not any(cache.iterdir()), "loading wrote into the Triton cache"
    return info, torch.load(tmp_path / "out.pt"), torch.load(tmp_path / "out.pt.graph")


CASES = {
    "bert_base_small": (["input_ids", "attention_mask"], (1, 16), (2, 16), (4, 16)),
    "resnet50_small": (["input"], (1, 3, 64, 64), (2, 3, 64, 64), (4, 3, 64, 64)),
}


@pytest.mark.fast(model="bert_base_small")
@pytest.mark.parametrize("model", sorted(CASES))
def test_fresh_process_runs_stored_cubins_without_triton(tmp_path, model):
    pytest.importorskip("triton")
    pytest.importorskip("cuda.bindings")
    from tensorforge import zoo
    names, mn, opt, mx = CASES[model]
    onnx_model = zoo.get_model(model)
    names = [i.name for i in onnx_model.graph.input if i.name in names] or names
    cfg = tf.BuilderConfig(device="cuda", fp16=True, profiles=[_profile(names, mn, opt, mx)], opt_level=0,
                           tactic_sources=TRITON_ONLY)
    eng = tf.Builder(cfg).build(onnx_model)
    assert binaries.uses_triton(eng.plan)
    bins = eng.binaries()
    kinds = {b.name.split("_0d")[0] for b in bins.values()}
    assert bins and all(b.cubin[:4] == b"\x7fELF" for b in bins.values()), kinds
    path = tmp_path / f"{model}.engine"
    eng.save(path)
    feed = {k: torch.from_numpy(v) for k, v in zoo.random_inputs(model, 2, seed=1).items()}
    by_triton = Engine(eng.plan, eng.weights, eng.device, b"").create_execution_context().infer(feed)
    info, got, got_graph = _child(tmp_path, path, feed)
    assert not info["triton"], "the runtime imported triton"
    assert info["used"] > 0, "no stored cubin was launched"
    for k, w in by_triton.items():
        torch.testing.assert_close(got[k], w.cpu(), rtol=0, atol=0)
        torch.testing.assert_close(got_graph[k], w.cpu(), rtol=0, atol=0)
    print(f"\n{model}: {len(bins)} cubins ({sorted(kinds)}), {len(eng.artifacts) / 2**20:.2f} MiB; "
          f"load {info['load_s']:.3f} s; load -> first output {info['first_s']:.3f} s")


@pytest.mark.fast
def test_engine_without_triton_stores_nothing():
    from tensorforge import zoo
    p = _profile(["input_ids", "attention_mask"], (1, 16), (2, 16), (4, 16))
    cfg = tf.BuilderConfig(device="cuda", profiles=[p], tactic_sources=["-TRITON"])
    eng = tf.Builder(cfg).build(zoo.get_model("bert_base_small"))
    assert not binaries.uses_triton(eng.plan) and eng.artifacts == b""
