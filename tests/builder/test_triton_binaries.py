"""Compiled Triton kernels in the engine's artifacts section: container round trip, validation,
installation into a cache dir, engines without them, and (with triton installed) a real sm90
compile recorded, installed elsewhere and found there as a cache hit."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

import tensorforge as tf
from tensorforge.errors import EngineFormatError
from tensorforge.kernels.triton import binaries
from tensorforge.runtime import format as fmt
from tensorforge.runtime.engine import Engine
from tensorforge.testing import rand

from ..core.models import conv_net

KEY = "ZVBBPB7C2TM5VE5CPYJIU5VD6TO3ROT6UZW4FM7A74MA477ZO7LA"
LAUNCHER = "__triton_launcher.cpython-311-x86_64-linux-gnu.so"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _fake_files():
    group = json.dumps({"child_paths": {"k.cubin": "k.cubin", "k.json": "k.json"}}).encode()
    return {f"{KEY}/k.json": b'{"name": "k"}', f"{KEY}/k.cubin": bytes(range(256)) * 3,
            f"{KEY}/__grp__k.json": group, f"LAUNCHERKEY/{LAUNCHER}": b"\x7fELF fake"}


@pytest.fixture(scope="module")
def cpu_engine():
    return tf.Builder(tf.BuilderConfig(device="cpu")).build(conv_net())


def test_pack_unpack_round_trip():
    files = _fake_files()
    meta, got = binaries.unpack(binaries.pack(files, {"triton_version": "3.6.0"}))
    assert got == files and meta == {"triton_version": "3.6.0"}
    assert binaries.unpack(binaries.pack({})) == ({}, {})


def _corrupt_blobs():
    good = binaries.pack(_fake_files(), {"triton_version": "3.6.0"})
    n = int.from_bytes(good[12:20], "little")
    index = json.loads(good[20:20 + n])

    def with_index(ix):
        raw = json.dumps(ix).encode()
        return good[:12] + len(raw).to_bytes(8, "little") + raw + good[20 + n:]
    escape = dict(index, files=[["../../evil", s] if p.endswith(".so") else [p, s] for p, s in index["files"]])
    group = binaries.pack({f"{KEY}/k.json": b"{}", f"{KEY}/__grp__k.json": b'{"child_paths": {"x": "/etc/x"}}'})
    return {"magic": b"NOTTRITN" + good[8:], "truncated": good[:-5], "index": good[:20] + b"[" + good[21:],
            "version": good[:8] + (7).to_bytes(4, "little") + good[12:], "path": with_index(escape),
            "group": group, "short": b"TFTR"}


@pytest.mark.parametrize("case", ["magic", "truncated", "index", "version", "path", "group", "short"])
def test_corrupt_blob_one_line_error(case):
    with pytest.raises(EngineFormatError) as e:
        binaries.unpack(_corrupt_blobs()[case], "m.engine")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("m.engine: ")


def test_install_writes_missing_files_atomically_and_absolute_groups(tmp_path, monkeypatch):
    monkeypatch.setattr(binaries, "triton_version", lambda: "3.6.0")
    files = _fake_files()
    root = tmp_path / "cache"
    st = binaries.install({"triton_version": "3.6.0"}, files, str(root))
    assert st["installed"] == len(files) and st["present"] == 0
    for path, data in files.items():
        if "__grp__" not in path:
            assert (root / path).read_bytes() == data
    children = json.loads((root / KEY / "__grp__k.json").read_text())["child_paths"]
    assert children == {n: str(root / KEY / n) for n in ("k.cubin", "k.json")}
    assert not [p for p in root.rglob("*") if ".tmp." in p.name]
    (root / KEY / "k.json").write_bytes(b"mine")  # existing files are never replaced
    st = binaries.install({"triton_version": "3.6.0"}, files, str(root))
    assert st["installed"] == 0 and st["present"] == len(files)
    assert (root / KEY / "k.json").read_bytes() == b"mine"


def test_install_unwritable_dir_warns(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(binaries, "triton_version", lambda: "3.6.0")
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    st = binaries.install({"triton_version": "3.6.0"}, _fake_files(), str(blocker / "cache"))
    assert st["installed"] == 0
    assert any("cannot install" in r.getMessage() for r in caplog.records)


def test_install_other_triton_version_skips(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(binaries, "triton_version", lambda: "9.9.9")
    st = binaries.install({"triton_version": "3.6.0"}, _fake_files(), str(tmp_path))
    assert st["installed"] == 0 and not os.listdir(tmp_path)
    assert any("built with Triton 3.6.0" in r.getMessage() for r in caplog.records)


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path))
    assert binaries.cache_dir() == str(tmp_path)


def test_engine_round_trip_keeps_artifacts(cpu_engine, tmp_path):
    blob = binaries.pack(_fake_files(), {"triton_version": "3.6.0"})
    eng = Engine(cpu_engine.plan, cpu_engine.weights, "cpu", blob, cpu_engine.build_info)
    p = tmp_path / "a.engine"
    eng.save(p)
    e2 = tf.Engine.load(p)
    assert e2.artifacts == blob
    x = rand((2, 3, 16, 16), seed=3)
    assert (e2.create_execution_context().infer({"x": x})["y"] ==
            cpu_engine.create_execution_context().infer({"x": x})["y"]).all()


def test_engine_with_corrupt_artifacts_one_line_error(cpu_engine, tmp_path):
    eng = Engine(cpu_engine.plan, cpu_engine.weights, "cpu", b"TFTRITON garbage", cpu_engine.build_info)
    p = tmp_path / "bad.engine"
    eng.save(p)  # the engine CRC is valid: the artifacts themselves are malformed
    with pytest.raises(EngineFormatError) as e:
        tf.Engine.load(p)
    assert "\n" not in str(e.value) and "Triton kernel binaries" in str(e.value)
    with pytest.raises(EngineFormatError):
        tf.Engine.deserialize(fmt.pack({"x": 1}, {}, b"junk"))  # header errors still come first


def test_load_imports_no_triton(cpu_engine, tmp_path):
    """Loading and running an engine (with or without stored binaries) on the CPU never imports triton."""
    plain, stored = tmp_path / "plain.engine", tmp_path / "stored.engine"
    cpu_engine.save(plain)
    blob = binaries.pack(_fake_files(), {"triton_version": "3.6.0"})
    Engine(cpu_engine.plan, cpu_engine.weights, "cpu", blob, cpu_engine.build_info).save(stored)
    code = textwrap.dedent(f"""
        import sys, torch, tensorforge as tf
        for p in ({str(plain)!r}, {str(stored)!r}):
            e = tf.Engine.load(p)
            e.create_execution_context().infer({{"x": torch.ones(1, 3, 16, 16)}})
        assert "triton" not in sys.modules, "triton was imported"
        print("ok")""")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-2000:]


def test_builder_stores_nothing_on_cpu(cpu_engine):
    assert cpu_engine.artifacts == b"" and not binaries.uses_triton(cpu_engine.plan)


REAL = r'''
import json, os, sys
cache_a, cache_b = sys.argv[1], sys.argv[2]
os.environ["TRITON_CACHE_DIR"] = cache_a
import triton, triton.language as tl
from triton import knobs
from triton.backends.compiler import GPUTarget
from triton.compiler.compiler import ASTSource
from tensorforge.kernels.triton import binaries, launch

SRC = """
import triton
import triton.language as tl

@triton.jit
def tf_twice(x, y, n, B: tl.constexpr):
    i = tl.program_id(0) * B + tl.arange(0, B)
    tl.store(y + i, tl.load(x + i, mask=i < n) * 2, mask=i < n)
"""
fn = launch.compile_source(SRC, "tf_twice")
assert any(f is fn for f in binaries.jit_functions())
before = fn.device_caches
with binaries._fresh_jit():
    assert fn.device_caches is not before
assert fn.device_caches is before

def compile_it():
    sig = {"x": "*fp32", "y": "*fp32", "n": "i32", "B": "constexpr"}
    return triton.compile(ASTSource(fn, sig, {"B": 128}), target=GPUTarget("cuda", 90, 32))

miss = binaries.record(compile_it)   # compiles into cache_a
hit = binaries.record(compile_it)    # cache hit in cache_a: the same files are recorded
assert miss == hit, (sorted(miss), sorted(hit))
names = sorted(p.split("/")[1] for p in miss)
assert names == ["__grp__tf_twice.json", "tf_twice.cubin", "tf_twice.json"], names
meta, files = binaries.unpack(binaries.pack(miss, {"triton_version": triton.__version__}))
st = binaries.install(meta, files, cache_b)
assert st["installed"] == 3, st
events = []
knobs.compilation.listener = lambda **kw: events.append(kw["cache_hit"])
with knobs.cache.scope():
    knobs.cache.dir = cache_b
    ck = compile_it()
assert events == [True], events
assert ck.asm["cubin"] == files[[p for p in files if p.endswith(".cubin")][0]]
print("ok")
'''


def test_real_compile_recorded_installed_and_hit(tmp_path):
    """sm90 code generation runs without a GPU: record, pack, install elsewhere, cache hit there."""
    import importlib.util
    if importlib.util.find_spec("triton") is None:  # not importorskip: importing triton here, outside
        pytest.skip("triton is not installed")       # the interpreter, breaks later interpreter tests
    r = subprocess.run([sys.executable, "-c", REAL, str(tmp_path / "a"), str(tmp_path / "b")],
                       capture_output=True, text=True, cwd=ROOT, timeout=300,
                       env={k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"})
    if r.returncode != 0 and "ptxas" in r.stderr.lower() and "not found" in r.stderr.lower():
        pytest.skip("no ptxas for sm90 code generation here")
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-3000:]


def test_warm_up_runs_each_profile_at_opt_shapes():
    p0, p1 = tf.OptimizationProfile(), tf.OptimizationProfile()
    p0.set_shape("x", (1, 3, 16, 16), (2, 3, 16, 16), (3, 3, 16, 16))
    p1.set_shape("x", (4, 3, 16, 16), (5, 3, 16, 16), (6, 3, 16, 16))
    eng = tf.Builder(tf.BuilderConfig(device="cpu", profiles=[p0, p1])).build(conv_net())
    feeds = binaries.feeds(eng.plan)
    assert [tuple(f["x"].shape) for f in feeds] == [(2, 3, 16, 16), (5, 3, 16, 16)]
    assert all(f["x"].dtype.is_floating_point and f["x"].abs().max() <= 1 and f["x"].any() for f in feeds)
    binaries.warm_up(eng)
    assert binaries.capture(eng) == b""  # CPU engines have no Triton kernels
