import json
import struct

import numpy as np
import pytest
import torch

import tensorforge as tf
from tensorforge import fileio
from tensorforge.errors import EngineFormatError
from tensorforge.runtime import format as fmt
from tensorforge.testing import rand

from .models import conv_net


@pytest.fixture(scope="module")
def engine():
    return tf.Builder(tf.BuilderConfig(device="cpu")).build(conv_net())


def test_save_load_identical_outputs(engine, tmp_path):
    x = rand((3, 3, 16, 16), seed=1)
    a = engine.create_execution_context().infer({"x": x})["y"]
    p = tmp_path / "m.engine"
    engine.save(p)
    e2 = tf.Engine.load(p)
    b = e2.create_execution_context().infer({"x": x})["y"]
    assert torch.equal(a, b)
    assert e2.load_time_s is not None and e2.size_bytes == p.stat().st_size
    assert [d.name for d in e2.inputs] == ["x"] and e2.inputs[0].shape == (-1, 3, 16, 16)
    assert e2.outputs[0].dtype == "float32"


def test_header_records_versions_device_config_layers(engine):
    header, weights, _ = fmt.unpack(engine.serialize())
    assert header["tensorforge_version"] == tf.__version__
    assert header["torch_version"] == torch.__version__
    assert header["device"]["type"] == "cpu"
    plan = header["plan"]
    assert plan["config"]["opt_level"] == 3
    assert plan["layers"][0]["origin"][:2] == ["conv1", "relu1"]  # fused: "conv1 + relu1 ..."
    assert all("tactic" in lay for lay in plan["layers"])
    assert set(weights) >= {"w1", "b1", "fc_w"}


def _write(tmp_path, data, name="bad.engine"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_truncated_file(engine, tmp_path):
    data = engine.serialize()
    with pytest.raises(EngineFormatError, match="truncated"):
        tf.Engine.load(_write(tmp_path, data[:-100]))


def test_corrupt_file(engine, tmp_path):
    data = bytearray(engine.serialize())
    data[-10] ^= 0xFF
    with pytest.raises(EngineFormatError, match="corrupt"):
        tf.Engine.load(_write(tmp_path, bytes(data)))


def test_not_an_engine(tmp_path):
    with pytest.raises(EngineFormatError, match="not a tensorforge engine"):
        tf.Engine.load(_write(tmp_path, b"hello world, not an engine at all"))
    with pytest.raises(EngineFormatError, match="not found"):
        tf.Engine.load(tmp_path / "missing.engine")


def test_other_format_version(engine, tmp_path):
    data = bytearray(engine.serialize())
    struct.pack_into("<I", data, 8, fmt.FORMAT_VERSION + 1)
    with pytest.raises(EngineFormatError, match="format version"):
        tf.Engine.load(_write(tmp_path, bytes(data)))


def _with_device(engine, device):
    header, weights, art = fmt.unpack(engine.serialize())
    header["device"] = device
    return fmt.pack(header, weights, art)


def test_other_gpu_architecture(engine, tmp_path, monkeypatch):
    data = _with_device(engine, {"type": "cuda", "name": "NVIDIA A100", "capability": [8, 0]})
    if not torch.cuda.is_available():
        with pytest.raises(EngineFormatError, match=r"built for NVIDIA A100 \(sm_80\)"):
            tf.Engine.load(_write(tmp_path, data))
    from tensorforge.runtime import engine as eng_mod
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(eng_mod, "device_info", lambda dev: {"type": "cuda", "name": "NVIDIA H100", "capability": [9, 0]})
    with pytest.raises(EngineFormatError, match="this GPU is NVIDIA H100 \\(sm_90\\); rebuild"):
        tf.Engine.load(_write(tmp_path, data, "a100.engine"))


def test_save_is_atomic_and_keeps_existing_file(engine, tmp_path, monkeypatch):
    p = tmp_path / "keep.engine"
    p.write_bytes(b"precious")
    monkeypatch.setattr(fileio.os, "replace", lambda *a: (_ for _ in ()).throw(OSError(28, "No space left")))
    with pytest.raises(EngineFormatError, match="cannot write"):
        engine.save(p)
    assert p.read_bytes() == b"precious"
    assert list(tmp_path.iterdir()) == [p]


def test_header_is_json(engine):
    data = engine.serialize()
    _, _, nh, _, _, _ = fmt._PREFIX.unpack_from(data)
    json.loads(data[fmt._PREFIX.size:fmt._PREFIX.size + nh])
    assert np.isfinite(engine.device_memory_size)


def test_size_bytes_from_shapes_is_the_file_size(engine, tmp_path):
    """size_bytes of an engine never saved is computed from the weights' shapes (format.size), and is
    what save then writes."""
    engine._size_bytes = None
    n = engine.size_bytes
    p = tmp_path / "s.engine"
    engine.save(p)
    assert n == p.stat().st_size == len(engine.serialize())
