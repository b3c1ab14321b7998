"""Runner on real CPU engines: batched answers equal single-request answers, padding, failure isolation."""
import numpy as np
import pytest

from tensorforge.serve.runner import EngineFailure, Runner
from tensorforge.serve.spec import RequestError

from .engines import div_engine, images, seq_engine, static_engine, zoo_engine


def test_batched_equals_single_requests():
    r = Runner(zoo_engine("mobilenetv2_small"))
    feeds = [{"input": images(b, seed=i)} for i, b in enumerate([1, 3, 2, 5, 4, 1, 7])]  # 23 rows > 16
    single = [r.infer(f)["output"] for f in feeds]
    calls = r.metrics.engine_calls
    got = r.run_many(feeds)
    assert r.metrics.engine_calls - calls == 2  # cut into two calls of <= 16 rows
    assert max(int(k) for k in r.metrics.batch_rows) <= 16
    for g, s in zip(got, single):
        np.testing.assert_allclose(g["output"], s, rtol=1e-5, atol=1e-5)
    assert r.staging.usable
    replans = r.context.replans
    r.run_many(feeds)  # batch sizes seen before: their plans are reused (fixed buffer addresses)
    assert r.context.replans == replans


def test_padding_up_to_profile_min():
    r = Runner(div_engine(lo=4, hi=8))
    a = np.arange(1, 9, dtype=np.int64).reshape(2, 4) * 6
    b = np.full((2, 4), 3, np.int64)
    assert r.spec.min_batch == 4
    out = r.infer({"a": a, "b": b})["y"]
    assert out.shape == (2, 4) and (out == a // 3).all()
    assert r.metrics.batch_rows == {2: 1}  # real rows recorded; 2 pad rows never reach the client


def test_engine_failure_fails_alone():
    r = Runner(div_engine())
    ok = {"a": np.full((2, 4), 9, np.int64), "b": np.full((2, 4), 3, np.int64)}
    bad = {"a": np.full((1, 4), 9, np.int64), "b": np.array([[1, 0, 1, 1]], np.int64)}
    res = r.run_many([ok, bad, ok])
    assert isinstance(res[1], EngineFailure) and "ZeroDivisionError" in str(res[1])
    for x in (res[0], res[2]):
        assert (x["y"] == 3).all()
    assert r.metrics.failures == 1
    assert (r.infer(ok)["y"] == 3).all()  # still serving


def test_mixed_shapes_and_static_engines():
    r = Runner(seq_engine())
    feeds = [{"x": np.full((1, n), n, np.float32)} for n in (2, 5, 2, 8)]
    for f, g in zip(feeds, r.run_many(feeds)):
        assert (g["y"] == 2 * f["x"]).all()
    with pytest.raises(RequestError, match="outside the profile"):
        r.validate({"x": np.zeros((1, 9), np.float32)})
    s = Runner(static_engine())
    assert not s.spec.batched
    x = np.array([[-1, 2, -3], [4, -5, 6]], np.float32)
    res = s.run_many([{"x": x}, {"x": -x}])
    assert (res[0]["y"] == np.maximum(x, 0)).all() and (res[1]["y"] == np.maximum(-x, 0)).all()
    assert s.metrics.engine_calls == 2
