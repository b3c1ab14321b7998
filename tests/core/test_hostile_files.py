"""Hostile files and careless flags: one-line refusals, nothing the user owns destroyed."""
import json
import os
import struct
import time
import zlib

import pytest

import tensorforge as tf
from tensorforge.cli.forgeexec.main import main as forgeexec
from tensorforge.errors import EngineFormatError, TensorforgeError
from tensorforge.runtime import format as fmt

from .models import conv_net

FAST = ["--iterations=1", "--duration=0", "--warmUp=0"]


@pytest.fixture(scope="module")
def engine_bytes():
    return tf.Builder(tf.BuilderConfig(opt_level=0, device="cpu")).build(conv_net()).serialize()


def _split(data):
    _, _, nh, nw, na, _ = fmt._PREFIX.unpack_from(data)
    body = data[fmt._PREFIX.size:]
    return json.loads(body[:nh]), body[nh:nh + nw], body[nh + nw:]


def _repack(header, weights, artifacts=b""):
    hdr = json.dumps(header).encode()
    body = hdr + weights + artifacts
    return fmt._PREFIX.pack(b"TFENGINE", fmt.FORMAT_VERSION, len(hdr), len(weights), len(artifacts), zlib.crc32(body)) + body


def test_sparse_3gib_file_refused_without_reading(tmp_path):
    p = tmp_path / "big.engine"
    with open(p, "wb") as f:
        f.write(fmt._PREFIX.pack(b"TFENGINE", fmt.FORMAT_VERSION, 2, (3 << 30) - fmt._PREFIX.size, 0, 0) + b"{}")
        f.truncate(3 << 30)
    t0 = time.perf_counter()
    with pytest.raises(EngineFormatError, match="truncated or corrupt"):
        tf.Engine.load(str(p))
    assert time.perf_counter() - t0 < 1.0


def test_power_tower_in_header_refused_at_load(engine_bytes, tmp_path):
    h, w, a = _split(engine_bytes)
    out = next(t for t in h["plan"]["tensors"] if t["kind"] == "output")
    out["shape"][0] = "9**9**9"
    t0 = time.perf_counter()
    with pytest.raises(EngineFormatError, match=r"plan.tensors\[\d+\].shape\[0\].*exponent"):
        tf.Engine.deserialize(_repack(h, w, a))
    assert time.perf_counter() - t0 < 1.0


@pytest.mark.parametrize("edit,match", [
    (lambda h: h["plan"]["tensors"][0].update(name=5), "expected a string"),
    (lambda h: h["plan"].pop("layers"), "missing key 'layers'"),
    (lambda h: h["plan"]["tensors"][0].update(dtype="float99"), "unknown dtype"),
    (lambda h: h["plan"].update(device_memory_size=2**62), "device_memory_size"),
    (lambda h: h["plan"]["layers"][0]["inputs"].__setitem__(0, "ghost"), "not in plan.tensors"),
])
def test_schema_errors_name_the_value(engine_bytes, edit, match):
    h, w, a = _split(engine_bytes)
    edit(h)
    with pytest.raises(EngineFormatError, match=match):
        tf.Engine.deserialize(_repack(h, w, a))


def test_weight_missing_from_file_is_a_load_error(engine_bytes):
    h, w, a = _split(engine_bytes)
    n = struct.unpack_from("<Q", w)[0]
    meta = json.loads(w[8:8 + n])
    name = next(k for k in meta if k != "__metadata__")
    meta.pop(name)
    hdr = json.dumps(meta).encode()
    with pytest.raises(EngineFormatError, match=f"weight '{name}' named by the plan is missing"):
        tf.Engine.deserialize(_repack(h, struct.pack("<Q", len(hdr)) + hdr + w[8 + n:], a))


def test_fifo_and_dev_zero_refused(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for p in (str(fifo), "/dev/zero"):
        with pytest.raises(EngineFormatError, match="not a regular file"):
            tf.Engine.load(p)
        with pytest.raises(TensorforgeError, match="not a regular file"):
            tf.frontend.load_model_proto(p)


@pytest.mark.parametrize("content", ["my notes\n", '{"version": 1, "other": 2}', "ONNX"])
def test_timing_cache_that_is_something_else_is_refused(tmp_path, capsys, content):
    model = tmp_path / "m.onnx"
    import onnx
    onnx.save(conv_net(), str(model))
    target = model if content == "ONNX" else tmp_path / "cache.json"
    if content != "ONNX":
        target.write_text(content)
    before = target.read_bytes()
    rc = forgeexec([f"--onnx={model}", "--builderOptimizationLevel=1", f"--timingCacheFile={target}", *FAST])
    err = capsys.readouterr().err
    assert rc != 0 and target.read_bytes() == before
    assert len([ln for ln in err.splitlines() if "[E]" in ln]) == 1


def test_no_output_onto_an_unused_timing_cache_file(tmp_path, capsys):
    """With --noBuilderCache the timing cache file is neither read nor written, but it is still the user's: another
    output naming it is refused (session 13's fuzz, seed 50: --exportLayerInfo replaced it)."""
    import onnx
    model, cache = tmp_path / "m.onnx", tmp_path / "other.json"
    onnx.save(conv_net(), str(model))
    cache.write_text('{"mine": 1}')
    rc = forgeexec([f"--onnx={model}", f"--timingCacheFile={cache}", "--noBuilderCache",
                    f"--exportLayerInfo={cache}", *FAST])
    err = capsys.readouterr().err
    assert rc != 0 and cache.read_text() == '{"mine": 1}' and "refusing to overwrite" in err, err
    assert len([ln for ln in err.splitlines() if "[E]" in ln]) == 1


def test_output_equal_to_input_is_refused(tmp_path, capsys):
    import onnx
    model = tmp_path / "m.onnx"
    onnx.save(conv_net(), str(model))
    before = model.read_bytes()
    for flag in ("--saveEngine", "--exportTimes", "--exportOutput"):
        rc = forgeexec([f"--onnx={model}", f"{flag}={model}", *FAST])
        assert rc != 0 and model.read_bytes() == before
        assert "refusing to overwrite" in capsys.readouterr().err


def test_save_never_follows_a_symlink_at_a_temp_name(engine_bytes, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out.engine"
    for name in (f"out.engine.tmp{os.getpid()}", ".out.engine.tmp"):
        os.symlink(victim, tmp_path / name)
    fmt.save(str(out), engine_bytes)
    assert victim.read_text() == "precious"
    assert out.read_bytes() == engine_bytes and not out.is_symlink()


def test_failed_build_keeps_existing_engine(tmp_path, capsys):
    out = tmp_path / "old.engine"
    out.write_bytes(b"old engine")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    assert forgeexec([f"--onnx={bad}", f"--saveEngine={out}", *FAST]) != 0
    assert out.read_bytes() == b"old engine"


def test_huge_shape_input_length_is_refused_quickly():
    """A Reshape whose shape input declares 2**40 elements (fuzzer: dim_huge) is refused in one line,
    not expanded into 2**40 run-time dims (it hung the builder)."""
    from onnx import TensorProto, helper

    from tensorforge.errors import ShapeError
    g = helper.make_graph([helper.make_node("Reshape", ["data", "shape"], ["y"])], "g",
                          [helper.make_tensor_value_info("data", TensorProto.FLOAT, [2, 3, 4]),
                           helper.make_tensor_value_info("shape", TensorProto.INT64, [1 << 40])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    t0 = time.perf_counter()
    with pytest.raises(ShapeError, match="ranks over 64"):
        tf.Builder(tf.BuilderConfig(device="cpu", opt_level=0)).build(m)
    assert time.perf_counter() - t0 < 10


def test_names_that_are_not_utf8_are_refused(tmp_path):
    """A bit flip inside a name makes protobuf return bytes (invalid UTF-8): one line, not a TypeError."""
    from onnx import TensorProto, helper
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="QQQQ")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    raw = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    path = tmp_path / "m.onnx"
    path.write_bytes(raw.replace(b"QQQQ", b"\xff\xfe\xfd\xfc"))
    with pytest.raises(TensorforgeError, match="not valid UTF-8"):
        tf.Builder(tf.BuilderConfig(device="cpu", opt_level=0)).build(str(path))
