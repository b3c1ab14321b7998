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


def test_warm_up_runs_each_batch_size_once_before_serving():
    """warmup="all" runs every batch size 1..max once at start (zeros), so no request pays a size's first
    call (its plan, CUDA graph, kernel loads: ~0.3 s each on the H200); later requests reuse those plans,
    their answers are unchanged and the warm-up is not counted as served traffic."""
    path = zoo_engine("mobilenetv2_small")
    cold = Runner(path)
    assert cold.warmed == []  # the CPU default: none
    r = Runner(path, warmup="all")
    assert r.warmed == list(range(1, r.spec.max_batch + 1))
    assert r.metrics.engine_calls == 0
    replans = r.context.replans
    feeds = [{"input": images(b, seed=i)} for i, b in enumerate([1, 3, 2, 5])]
    for f in feeds:
        np.testing.assert_allclose(r.infer(f)["output"], cold.infer(f)["output"], rtol=1e-5, atol=1e-5)
    assert r.context.replans == replans  # every size seen in the warm-up: no new plan
    assert Runner(path, warmup="pow2").warmed == [1, 2, 4, 8, 16]


def test_warm_up_from_the_environment_and_bad_values(monkeypatch):
    path = zoo_engine("mobilenetv2_small")
    monkeypatch.setenv("TENSORFORGE_SERVE_WARMUP", "pow2")
    assert Runner(path).warmed == [1, 2, 4, 8, 16]
    with pytest.raises(ValueError, match="warmup must be one of"):
        Runner(path, warmup="some")


def test_served_answers_judged_against_the_engines_own_batch_deviation():
    """loadtest.batch_deviation: how far the engine in-process answers a batched row from the row alone
    (FP32 on the CPU: ~1e-6); distinct_distance: how far different payloads' answers are apart; with
    max_dev a right answer passes and a swapped one (another payload's answer) fails."""
    from tensorforge.serve import loadtest
    path = zoo_engine("mobilenetv2_small")
    feeds = [{"input": images(1, seed=i)} for i in range(6)]
    refs = loadtest.references(path, feeds)
    own = loadtest.batch_deviation(path, feeds, refs, (2, 6))
    apart = loadtest.distinct_distance(refs)
    assert 0 <= own < 1e-4 < apart
    max_dev = max(2 * own, 1e-4)
    which = [0, 1, 2, 3]
    answers = [refs[0], refs[1], refs[3], None]  # right, right, swapped, lost
    assert loadtest.mismatches(answers, which, refs, max_dev=max_dev) == [2, 3]
    assert loadtest.deviation({"output": refs[0]["output"][:, :5]}, refs[0]) == float("inf")


def test_rows_straight_into_staging_read_only_requests_and_no_aliasing():
    """run_parts: each request's rows are copied once into the staging buffers (read-only arrays, as Ray
    deserializes them, need no copy first); the answers are arrays of their own, so a later batch
    (which reuses the buffers) leaves earlier answers as they were."""
    r = Runner(zoo_engine("mobilenetv2_small"))
    feeds = [{"input": images(b, seed=10 + i)} for i, b in enumerate([2, 1, 3])]
    single = [r.infer(f)["output"].copy() for f in feeds]
    for f in feeds:
        f["input"].flags.writeable = False
    first = r.run_many(feeds)
    r.run_many([{"input": images(6, seed=99)}])  # overwrites the staging buffers
    for got, want in zip(first, single):
        np.testing.assert_allclose(got["output"], want, rtol=1e-5, atol=1e-5)
    outs = [g["output"] for g in first]
    assert not any(np.shares_memory(a, r.staging.host["output"]) for a in outs)
