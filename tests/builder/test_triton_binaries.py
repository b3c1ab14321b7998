"""Compiled kernels in the engine's artifacts section: cubins + launch metadata only. Container round
trip, refusal of host code, path-like names and the previous format, the launch argument layout,
the specialization key, and (with triton installed) a real sm90 compile turned into a stored cubin."""
import os
import struct
import subprocess
import sys
import textwrap

import pytest
import torch

import tensorforge as tf
from tensorforge.errors import EngineFormatError
from tensorforge.kernels import cubin
from tensorforge.kernels.driver import arg_layout
from tensorforge.kernels.triton import binaries
from tensorforge.runtime.engine import Engine
from tensorforge.testing import rand

from ..core.models import conv_net

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _elf(machine: int) -> bytes:
    """A minimal ELF header with e_machine `machine` (190: CUDA device code, 62: x86-64 host code)."""
    return b"\x7fELF\x02\x01\x01" + bytes(11) + struct.pack("<H", machine) + bytes(200)


def _bin(name="tf_k", spec="fp16D,i32|B=64", cubin_bytes=None, **kw):
    params = kw.pop("params", (("x", "*fp16"), ("n", "i32"), ("B", "constexpr")))
    return cubin.Binary("tf_k-0123", spec, name, params, 4, 0, cubin_bytes or _elf(cubin.EM_CUDA), **kw)


@pytest.fixture(scope="module")
def cpu_engine():
    return tf.Builder(tf.BuilderConfig(device="cpu")).build(conv_net())


def test_round_trip():
    bins = [_bin(), _bin(spec="fp16,i32|B=64", global_scratch=(128, 16))]
    got = cubin.unpack(cubin.pack(bins, "3.6.0"))
    assert set(got) == {(b.key, b.spec) for b in bins}
    assert all(got[(b.key, b.spec)] == b for b in bins)
    assert cubin.pack([]) == b"" and cubin.unpack(b"") == {}


def _blob_with(data: bytes, file_name=None) -> bytes:
    blob = cubin.pack([_bin(cubin_bytes=data)])
    return blob if file_name is None else blob.replace(_bin(cubin_bytes=data).file.encode(), file_name.encode())


@pytest.mark.parametrize("data", [_elf(62), _elf(183), b"#!/bin/sh\nrm -rf /\n" + bytes(64),
                                  b"import os\nos.system('x')\n" + bytes(64), bytes(64)])
def test_host_code_is_refused(data):
    with pytest.raises(EngineFormatError) as e:
        cubin.unpack(_blob_with(data), "m.engine")
    assert "not a cubin" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("name", ["../x.cubin", "a/b.cubin", "a\\b.cubin", "..cubin"])
def test_path_like_names_are_refused(name):
    blob = _blob_with(_elf(cubin.EM_CUDA))
    good = _bin().file
    bad = name.ljust(len(good), "x") if len(name) < len(good) else name
    blob = blob.replace(f'"file":"{good}"'.encode(), f'"file":{__import__("json").dumps(bad)}'.encode())
    # the index changed length: rewrite its size field
    n_index = len(blob) - len(_elf(cubin.EM_CUDA)) - 20
    blob = blob[:12] + struct.pack("<Q", n_index) + blob[20:]
    with pytest.raises(EngineFormatError, match="is a path or not a plain file name"):
        cubin.unpack(blob, "m.engine")


def test_previous_format_asks_for_a_rebuild():
    with pytest.raises(EngineFormatError, match="rebuild this engine"):
        cubin.unpack(b"TFTRITON" + bytes(40), "m.engine")
    with pytest.raises(EngineFormatError, match="not cubins"):
        cubin.unpack(b"SOMETHING ELSE" + bytes(40), "m.engine")


@pytest.mark.parametrize("params", [(("x", "nvTmaDesc"),), (("x", "i33"),)])
def test_unknown_parameter_types_are_refused(params):
    with pytest.raises(EngineFormatError, match="invalid"):
        cubin.unpack(cubin.pack([_bin(params=params)]), "m.engine")


def test_engine_with_host_code_is_refused_on_load(cpu_engine, tmp_path):
    for data, what in ((_elf(62), "not a cubin"), (b"TFTRITON" + bytes(64), "rebuild this engine")):
        blob = data if data.startswith(b"TFTRITON") else _blob_with(data)
        p = tmp_path / "bad.engine"
        Engine(cpu_engine.plan, cpu_engine.weights, "cpu", blob, cpu_engine.build_info).save(p)
        with pytest.raises(EngineFormatError) as e:
            tf.Engine.load(p)
        assert what in str(e.value) and "\n" not in str(e.value)


def test_previous_engine_format_version_asks_for_a_rebuild(cpu_engine):
    data = bytearray(cpu_engine.serialize())
    struct.pack_into("<I", data, 8, 1)
    with pytest.raises(EngineFormatError, match="version 1 .*rebuild this engine"):
        tf.Engine.deserialize(bytes(data))


def test_engine_round_trip_keeps_cubins(cpu_engine, tmp_path):
    blob = cubin.pack([_bin()], "3.6.0")
    eng = Engine(cpu_engine.plan, cpu_engine.weights, "cpu", blob, cpu_engine.build_info)
    p = tmp_path / "a.engine"
    eng.save(p)
    e2 = tf.Engine.load(p)
    assert e2.artifacts == blob and list(e2.binaries()) == [("tf_k-0123", "fp16D,i32|B=64")]
    x = rand((2, 3, 16, 16), seed=3)
    assert (e2.create_execution_context().infer({"x": x})["y"] ==
            cpu_engine.create_execution_context().infer({"x": x})["y"]).all()


def test_argument_layout_follows_c_alignment():
    b = _bin(params=(("x", "*fp16"), ("n", "i32"), ("B", "constexpr"), ("s", "fp32"), ("m", "i64"),
                     ("flag", "i1"), ("y", "*fp32")))
    slots, fmt_, offsets, size = arg_layout(b)
    assert [i for i, _, _ in slots] == [0, 1, 3, 4, 5, 6]  # call positions; constexpr B skipped
    assert fmt_ == "@QifqbQQQ"
    assert offsets == [0, 8, 12, 16, 24, 32, 40, 48] and size == 56


def test_spec_distinguishes_what_triton_specializes_on():
    x = torch.empty(64, dtype=torch.float16)
    assert cubin.spec_of((x, 1, 32, 7, 2**40 + 1, 0.5, None, True), {"B": 64}) == "float16D,i321,i32D,i32,i64,f,N,b1|B=64"
    assert cubin.spec_of((x[1:],), {}) == "float16|"  # 2-byte offset: not 16-byte aligned


def test_load_imports_no_triton(cpu_engine, tmp_path):
    """Loading and running an engine (with or without stored cubins) on the CPU never imports triton."""
    plain, stored = tmp_path / "plain.engine", tmp_path / "stored.engine"
    cpu_engine.save(plain)
    Engine(cpu_engine.plan, cpu_engine.weights, "cpu", cubin.pack([_bin()]), cpu_engine.build_info).save(stored)
    code = textwrap.dedent(f"""
        import sys, torch, tensorforge as tf
        for p in ({str(plain)!r}, {str(stored)!r}):
            e = tf.Engine.load(p)
            e.create_execution_context().infer({{"x": torch.ones(1, 3, 16, 16)}})
        assert "triton" not in sys.modules, "triton was imported"
        print("ok")""")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-2000:]


def test_builder_stores_nothing_on_cpu(cpu_engine):
    assert cpu_engine.artifacts == b"" and not binaries.uses_triton(cpu_engine.plan)


REAL = r'''
import sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler.compiler import ASTSource
from tensorforge.kernels import cubin
from tensorforge.kernels.driver import arg_layout
from tensorforge.kernels.triton import launch

SRC = """
import triton
import triton.language as tl

@triton.jit
def tf_twice(x, y, n, s, B: tl.constexpr):
    i = tl.program_id(0) * B + tl.arange(0, B)
    tl.store(y + i, tl.load(x + i, mask=i < n) * s, mask=i < n)
"""
k = launch.compile_source(SRC, "tf_twice")
sig = {"x": "*fp32", "y": "*fp32", "n": "i32", "s": "fp32", "B": "constexpr"}
ck = triton.compile(ASTSource(k.jit, sig, {"B": 128}), target=GPUTarget("cuda", 90, 32))
b = launch.binary_of(k.key, "spec", ck, k.jit.arg_names)
got = cubin.unpack(cubin.pack([b], triton.__version__))[(k.key, "spec")]
assert got == b and cubin.is_cuda_elf(got.cubin) and got.name == "tf_twice", got.name
assert [t for _, t in got.params] == ["*fp32", "*fp32", "i32", "fp32", "constexpr"]
assert arg_layout(got)[1] == "@QQifQQ"
print("ok")
'''


def test_real_compile_becomes_a_stored_cubin():
    """sm90 code generation runs without a GPU: the compiled kernel is stored as a cubin + metadata."""
    import importlib.util
    if importlib.util.find_spec("triton") is None:  # not importorskip: importing triton here, outside
        pytest.skip("triton is not installed")       # the interpreter, breaks later interpreter tests
    r = subprocess.run([sys.executable, "-c", REAL], capture_output=True, text=True, cwd=ROOT, timeout=300,
                       env={**{k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}, "PYTHONPATH": ROOT})
    if r.returncode != 0 and "ptxas" in r.stderr.lower() and "not found" in r.stderr.lower():
        pytest.skip("no ptxas for sm90 code generation here")
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-3000:]


def test_warm_up_feeds_per_profile():
    p0, p1 = tf.OptimizationProfile(), tf.OptimizationProfile()
    p0.set_shape("x", (1, 3, 16, 16), (2, 3, 16, 16), (3, 3, 16, 16))
    p1.set_shape("x", (4, 3, 16, 16), (5, 3, 16, 16), (6, 3, 16, 16))
    eng = tf.Builder(tf.BuilderConfig(device="cpu", profiles=[p0, p1])).build(conv_net())
    feeds = binaries.feeds(eng.plan)
    assert [tuple(f["x"].shape) for f in feeds] == [(2, 3, 16, 16), (5, 3, 16, 16)]
    assert [tuple(f["x"].shape) for f in binaries.feeds(eng.plan, 2)] == [(3, 3, 16, 16), (6, 3, 16, 16)]
    assert all(f["x"].dtype.is_floating_point and f["x"].abs().max() <= 1 and f["x"].any() for f in feeds)
    binaries.warm_up(eng)
    assert binaries.capture(eng) == b""  # CPU engines have no Triton kernels
