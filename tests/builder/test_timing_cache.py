"""Timing cache: JSON round trip, key stability, merge on save, and same cache => same tactics."""
import json
import logging
import random

import pytest

import tensorforge as tf
from tensorforge.builder.timing_cache import TimingCache, environment, make_key
from tensorforge.errors import TensorforgeError

from .models import twin_convs

SIG = {"type": "Conv", "attrs": {"pads": [1, 1, 1, 1]}, "inputs": [["float16", [8, 64, 56, 56], "act", None]]}
ENV = {"gpu": "NVIDIA H100 80GB HBM3", "capability": [9, 0], "torch": "2.13.0", "triton": "3.6.0", "cudnn": 91000}


def _entry(timings):
    return {"tactic": None, "ms": None, "timings": timings, "layer": "Conv float16"}


def test_key_is_stable_and_depends_on_environment():
    k = make_key(SIG, ENV)
    assert k == make_key(json.loads(json.dumps(SIG)), dict(reversed(list(ENV.items()))))
    assert k.startswith("0x") and len(k) == 34
    assert k == "0x" + __import__("hashlib").sha256(json.dumps({"layer": SIG, "env": ENV}, sort_keys=True,
                                                           separators=(",", ":")).encode()).hexdigest()[:32]
    for field, other in (("gpu", "NVIDIA H200"), ("capability", [8, 0]), ("torch", "2.14.0"), ("cudnn", 90100),
                         ("triton", "3.7.0")):
        assert make_key(SIG, {**ENV, field: other}) != k
    assert make_key({**SIG, "type": "ConvTranspose"}, ENV) != k
    assert environment("cpu")["gpu"] == "cpu"


def test_round_trip_and_settled_winner(tmp_path):
    c = TimingCache()
    c.update("0xa", _entry({"aten:reference:{}": 2.0, 'aten:conv2d_nhwc:{"weight_layout":"channels_last"}': 1.0,
                           "fake:bad:{}": None}))
    e = c.lookup("0xa")
    assert e["tactic"] == {"source": "aten", "name": "conv2d_nhwc", "params": {"weight_layout": "channels_last"}}
    assert e["ms"] == 1.0
    back = TimingCache.deserialize(c.serialize())
    assert back.entries == c.entries
    path = tmp_path / "cache.json"
    n = c.save(str(path))
    assert n == path.stat().st_size
    d = json.loads(path.read_text())
    assert d["version"] == 1 and set(d["entries"]) == {"0xa"}
    assert TimingCache.load(str(path)).entries == c.entries


def test_missing_file_warns_and_starts_empty(tmp_path, caplog):
    path = tmp_path / "nope.json"
    with caplog.at_level(logging.WARNING, logger="tensorforge"):
        assert len(TimingCache.load(str(path))) == 0
    assert f"Could not read cache from: {path}. A new cache will be generated and written." in caplog.text


@pytest.mark.parametrize("text", ["{not json", json.dumps({"version": 99, "entries": {}}), "my notes\n",
                                  json.dumps({"other": "json"})])
def test_file_that_is_not_a_cache_is_refused_and_kept(tmp_path, text):
    path = tmp_path / "precious.json"
    path.write_text(text)
    with pytest.raises(TensorforgeError, match="not a tensorforge timing cache"):
        TimingCache.load(str(path))
    c = TimingCache()
    c.update("0xa", _entry({"aten:reference:{}": 1.0}))
    with pytest.raises(TensorforgeError, match="refusing to overwrite"):
        c.save(str(path))
    assert path.read_text() == text


def test_save_combines_with_file_written_meanwhile(tmp_path, caplog):
    path = str(tmp_path / "c.json")
    a = TimingCache()
    a.update("0xa", _entry({"aten:reference:{}": 1.0}))
    b = TimingCache()
    b.update("0xb", _entry({"aten:reference:{}": 3.0}))
    b.update("0xa", _entry({"aten:other:{}": 0.5, "aten:reference:{}": 9.0}))
    b.save(path)
    with caplog.at_level(logging.INFO, logger="tensorforge"):
        a.save(path)
    assert "Saved " in caplog.text and f"bytes of timing cache to {path}" in caplog.text
    disk = TimingCache.load(path)
    assert set(disk.entries) == {"0xa", "0xb"}
    # entries of the saving cache win on conflicts; timings of other tactics are merged in
    assert disk.lookup("0xa")["timings"] == {"aten:reference:{}": 1.0, "aten:other:{}": 0.5}
    assert disk.lookup("0xa")["tactic"]["name"] == "other"


def _random_timer(seed):
    rng = random.Random(seed)
    return {"conv2d_nhwc": lambda lay, t: rng.random(), "reference": lambda lay, t: rng.random()}


def _tactics(eng):
    return [(lay.name, lay.tactic) for lay in eng.plan.layers]


def test_same_cache_same_tactics_and_no_timing(fake_timer, tmp_path):
    path = str(tmp_path / "tc.json")
    picks = set()
    first = None
    for seed in range(6):  # random timings until both outcomes occurred once
        fake_timer.table = _random_timer(seed)
        eng = tf.Builder(tf.BuilderConfig(device="cpu", opt_level=4, timing_cache=str(tmp_path / f"s{seed}.json"))).build(twin_convs())
        picks.add(tuple(t["name"] for _, t in _tactics(eng)))
    assert len(picks) > 1  # timings really decide
    fake_timer.table = _random_timer(100)
    first = tf.Builder(tf.BuilderConfig(device="cpu", opt_level=4, timing_cache=path)).build(twin_convs())
    n_calls = len(fake_timer.calls)
    for seed in (101, 102):
        fake_timer.table = _random_timer(seed)
        again = tf.Builder(tf.BuilderConfig(device="cpu", opt_level=4, timing_cache=path)).build(twin_convs())
        assert _tactics(again) == _tactics(first)
        assert len(fake_timer.calls) == n_calls  # nothing timed: every signature hit the cache
        assert again.plan.meta["tactic_selection"]["cache_hits"] == 2


def test_level0_ignores_the_cache(fake_timer, tmp_path):
    path = tmp_path / "tc.json"
    tf.Builder(tf.BuilderConfig(device="cpu", timing_cache=str(path), opt_level=0)).build(twin_convs())
    assert not path.exists() and fake_timer.calls == []


def test_error_on_cache_miss(fake_timer, tmp_path):
    path = str(tmp_path / "tc.json")
    cfg = tf.BuilderConfig(device="cpu", opt_level=4, timing_cache=path, error_on_timing_cache_miss=True)
    with pytest.raises(TensorforgeError, match="timing cache miss for layer 'conv1"):
        tf.Builder(cfg).build(twin_convs())
    tf.Builder(tf.BuilderConfig(device="cpu", opt_level=4, timing_cache=path)).build(twin_convs())
    tf.Builder(cfg).build(twin_convs())  # warm cache: no miss


def test_public_api_name():
    assert tf.TimingCache is TimingCache
