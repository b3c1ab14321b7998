"""Compiled Triton kernels stored in the engine (CUDA): a fresh process with an empty Triton cache
loads the engine and runs its first inference without compiling anything (no kernel compile, no
launcher C build), with the builder process's outputs."""
import json
import os
import subprocess
import sys

import pytest
import torch

import tensorforge as tf
from tensorforge.kernels.triton import binaries

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRITON_ONLY = ["-CUBLAS", "-CUBLAS_LT", "-CUDNN", "-ATEN"]  # leaves triton tactics, then the reference

CHILD = r'''
import json, sys, time
import torch
import tensorforge as tf
eng_path, feed_path, out_path = sys.argv[1:4]
t0 = time.perf_counter()
eng = tf.Engine.load(eng_path)
load_s = time.perf_counter() - t0
triton_at_load = "triton" in sys.modules
import triton.runtime.build as tb
from triton import knobs
misses, builds = [], []
knobs.compilation.listener = lambda **kw: None if kw["cache_hit"] else misses.append(kw["src"].name)
real_build = tb._build
def counting_build(name, *a, **k):
    builds.append(name)
    return real_build(name, *a, **k)
tb._build = counting_build
feed = torch.load(feed_path)
ctx = eng.create_execution_context()
t1 = time.perf_counter()
out = ctx.infer(feed)
torch.cuda.synchronize()
first_s = time.perf_counter() - t1
torch.save({k: v.cpu() for k, v in out.items()}, out_path)
print(json.dumps({"misses": misses, "builds": builds, "load_s": load_s, "first_s": first_s,
                  "triton_at_load": triton_at_load, "cache_dir": knobs.cache.dir}))
'''


def _profile():
    p = tf.OptimizationProfile()
    for n in ("input_ids", "attention_mask"):
        p.set_shape(n, (1, 16), (2, 16), (4, 16))
    return p


def _child(tmp_path, eng_path, feed):
    torch.save(feed, tmp_path / "feed.pt")
    cache = tmp_path / "fresh_cache"
    cache.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(cache)
    r = subprocess.run([sys.executable, "-c", CHILD, str(eng_path), str(tmp_path / "feed.pt"),
                        str(tmp_path / "out.pt")], capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    info = json.loads(r.stdout.strip().splitlines()[-1])
    assert info["cache_dir"] == str(cache)
    return info, torch.load(tmp_path / "out.pt")


@pytest.mark.fast(sources="triton_only")
@pytest.mark.parametrize("sources", ["triton_only", "timed"])
def test_fresh_process_compiles_nothing(tmp_path, sources):
    pytest.importorskip("triton")
    from tensorforge import zoo
    extra = {"opt_level": 0, "tactic_sources": TRITON_ONLY} if sources == "triton_only" else {}
    cfg = tf.BuilderConfig(device="cuda", fp16=True, profiles=[_profile()], **extra)
    eng = tf.Builder(cfg).build(zoo.get_model("bert_base_small"))
    if not binaries.uses_triton(eng.plan):
        pytest.skip("no triton tactic was selected")
    meta, files = binaries.unpack(eng.artifacts)
    names = [p.split("/")[1] for p in files]
    assert any(n.endswith(".cubin") for n in names) and any(n.startswith("__triton_launcher") for n in names)
    assert any(n.startswith("cuda_utils") for n in names)
    assert not any(n.endswith((".ptx", ".ttir", ".ttgir", ".llir", ".source")) for n in names)
    path = tmp_path / "bert.engine"
    eng.save(path)
    feed = {k: torch.from_numpy(v) for k, v in zoo.random_inputs("bert_base_small", 2, seed=1).items()}
    want = eng.create_execution_context().infer(feed)
    info, got = _child(tmp_path, path, feed)
    assert info["misses"] == [], f"compiled after load: {info['misses']}"
    assert info["builds"] == [], f"C modules built after load: {info['builds']}"
    for k, w in want.items():
        torch.testing.assert_close(got[k], w.cpu(), rtol=2e-3, atol=2e-3)
    print(f"\n{sources}: {len(files)} files, {len(eng.artifacts) / 2**20:.2f} MiB stored; engine "
          f"{path.stat().st_size / 2**20:.2f} MiB; load {info['load_s']:.3f} s; "
          f"first inference {info['first_s']:.3f} s")


@pytest.mark.fast
def test_engine_without_triton_stores_nothing():
    from tensorforge import zoo
    cfg = tf.BuilderConfig(device="cuda", profiles=[_profile()], tactic_sources=["-TRITON"])
    eng = tf.Builder(cfg).build(zoo.get_model("bert_base_small"))
    assert not binaries.uses_triton(eng.plan) and eng.artifacts == b""
