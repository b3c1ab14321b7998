"""Request validation, packing into engine calls, padding, splitting, and HTTP body codecs (no server)."""
import io
import json

import numpy as np
import pytest

from tensorforge.serve import batching, codec
from tensorforge.errors import TensorforgeError
from tensorforge.serve.spec import IOSpec, RequestError, ServeSpec, batch_of, engine_view


def _spec(lo=1, hi=8, batched=True):
    shape = (-1, 3) if batched else (2, 3)
    x = IOSpec("x", "float32", shape, (lo, 3), (hi, 3)) if batched else IOSpec("x", "float32", shape)
    return ServeSpec((x,), (IOSpec("y", "float32", shape),), batched, lo, hi, hi)


def _feed(b, v=0.0):
    return {"x": np.full((b, 3), v, np.float32)}


def test_chunks_never_exceed_max_and_keep_requests_whole():
    spec = _spec(hi=8)
    rows = [3, 4, 2, 8, 1, 1, 5]
    chunks = batching.plan_chunks(spec, [_feed(b) for b in rows], rows)
    assert sorted(i for c in chunks for i in c) == list(range(len(rows)))
    assert all(sum(rows[i] for i in c) <= 8 for c in chunks)
    assert chunks[0] == [0, 1]  # arrival order: 3 + 4 fit, + 2 would not


def test_chunks_group_by_non_batch_shape():
    spec = ServeSpec((IOSpec("x", "float32", (-1, -1)),), (IOSpec("y", "float32", (-1, -1)),), True, 1, 8, 8)
    feeds = [{"x": np.zeros((1, n), np.float32)} for n in (2, 3, 2, 3)]
    assert batching.plan_chunks(spec, feeds, [1] * 4) == [[0, 2], [1, 3]]


def test_merge_split_roundtrip_and_padding_only_below_min():
    spec = _spec(lo=4, hi=8)
    feeds = [_feed(1, 1.0), _feed(2, 2.0)]
    merged, real = batching.merge(spec, feeds)
    assert real == 3 and merged["x"].shape == (4, 3)  # padded to the profile's min of 4
    assert (merged["x"][3] == 2.0).all()
    outs = batching.split(spec, {"y": merged["x"] * 10}, [1, 2])
    assert outs[0]["y"].shape == (1, 3) and (outs[0]["y"] == 10).all()
    assert outs[1]["y"].shape == (2, 3) and (outs[1]["y"] == 20).all()
    merged, real = batching.merge(_spec(lo=1, hi=8), feeds)
    assert real == 3 and merged["x"].shape == (3, 3)  # no padding when min allows


def test_validation_errors_are_one_line():
    spec = _spec(lo=1, hi=8)
    assert batch_of(spec, _feed(5)) == 5
    bad = [{"z": np.zeros((1, 3), np.float32)}, {}, {"x": np.zeros((1, 3), np.float64)},
           {"x": np.zeros((1, 4), np.float32)}, {"x": np.zeros((1, 3, 1), np.float32)},
           {"x": np.zeros((9, 3), np.float32)}, {"x": [[1.0, 2.0, 3.0]]}]
    for feed in bad:
        with pytest.raises(RequestError) as e:
            batch_of(spec, feed)
        assert "\n" not in str(e.value) and e.value.status == 400


def test_json_codec():
    spec = _spec()
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    for body in ({"inputs": {"x": x.tolist()}}, {"inputs": {"x": {"data": x.tolist(), "dtype": "float32"}}}):
        got = codec.decode(spec, json.dumps(body).encode())
        assert got["x"].dtype == np.float32 and (got["x"] == x).all()
    ans = codec.decode_answer(codec.encode_json({"y": x}))
    assert ans["y"].dtype == np.float32 and (ans["y"] == x).all()
    for body, word in ((b"{nope", "malformed JSON"), (b"[]", "JSON body must be"),
                       (b'{"inputs": {"w": [1]}}', "unknown input"),
                       (b'{"inputs": {"x": {"data": [[1, 2, 3]], "dtype": "float64"}}}', "dtype float64"),
                       (b'{"inputs": {"x": [[1, 2, 3], [1]]}}', "rectangular"), (b"", "empty")):
        with pytest.raises(RequestError, match=word):
            codec.decode(spec, body)


def test_numpy_codec():
    spec = _spec()
    x = np.ones((2, 3), np.float32)
    buf = io.BytesIO()
    np.save(buf, x)
    assert (codec.decode(spec, buf.getvalue())["x"] == x).all()
    buf = io.BytesIO()
    np.savez(buf, x=x)
    assert (codec.decode(spec, buf.getvalue())["x"] == x).all()
    assert (codec.decode_answer(codec.encode_npz({"y": x}))["y"] == x).all()
    with pytest.raises(RequestError, match="malformed .npy"):
        codec.decode(spec, codec.NPY_MAGIC + b"garbage")
    with pytest.raises(RequestError, match="malformed .npz"):
        codec.decode(spec, codec.NPZ_MAGIC + b"garbage")


def test_replica_plan():
    from tensorforge.serve.ray_deployment import replica_plan
    assert replica_plan("cuda", None, None, 8, 64) == (8, {"num_gpus": 1.0, "num_cpus": 1})  # one per GPU
    assert replica_plan("cuda", None, 0.5, 2, 64)[0] == 4  # two per GPU
    assert replica_plan("cpu", None, None, 0, 2) == (1, {"num_cpus": 1.0})
    assert replica_plan("cpu", 4, None, 0, 2) == (4, {"num_cpus": 0.5})  # never more CPUs than there are
    with pytest.raises(TensorforgeError, match="no GPU"):
        replica_plan("cuda", None, None, 0, 2)


def test_engine_view_limits():
    from .engines import div_engine, static_engine
    spec, device = engine_view(div_engine(lo=2, hi=8))
    assert device == "cpu" and spec.batched and (spec.min_batch, spec.max_batch, spec.opt_batch) == (2, 8, 4)
    assert engine_view(div_engine(lo=2, hi=8), max_batch=4)[0].max_batch == 4
    with pytest.raises(TensorforgeError, match="below the profile's minimum"):
        engine_view(div_engine(lo=2, hi=8), max_batch=1)
    assert not engine_view(static_engine())[0].batched
    with pytest.raises(TensorforgeError, match="no such engine"):
        engine_view("/nonexistent.engine")


def test_deployment_stays_callable_after_every_serve_module_is_imported():
    """tensorforge.serve.deployment is the Ray API function; no submodule of that name may replace it when
    something imports the package's modules (session 10: after export_triton, a module of that name did)."""
    import importlib
    import pkgutil

    import tensorforge.serve as pkg
    for m in pkgutil.iter_modules(pkg.__path__):
        if m.name not in ("ray_app", "triton_model"):  # need Ray, Triton's backend stub
            importlib.import_module(f"tensorforge.serve.{m.name}")
    assert callable(pkg.deployment) and callable(pkg.export_triton)
