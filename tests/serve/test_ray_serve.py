"""Ray Serve: HTTP (JSON, .npy, .npz) and handle clients, bad requests, failure isolation, metrics,
a 1,000-request mixed-batch load test, and draining on shutdown. Skipped without ray[serve]."""
import io
import json
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest

serve = pytest.importorskip("ray.serve", reason="ray[serve] not installed (pip install 'tensorforge[serve]')")
pytest.importorskip("aiohttp", reason="aiohttp (a ray[serve] dependency) not installed")
import ray  # noqa: E402

from tensorforge.serve import deployment, loadtest  # noqa: E402

from . import loadmix  # noqa: E402
from .conftest import free_port  # noqa: E402
from .engines import div_engine, images, zoo_engine  # noqa: E402

MODEL = "mobilenetv2_small"


@pytest.fixture(scope="module")
def server():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    img = serve.run(deployment(zoo_engine(MODEL), max_wait_ms=10, name="img"), name="img", route_prefix="/img")
    div = serve.run(deployment(div_engine(), max_wait_ms=50, name="div"), name="div", route_prefix="/div")
    yield {"url": f"http://127.0.0.1:{port}", "img": img, "div": div}
    serve.shutdown()
    ray.shutdown()


def _post(url, body, headers=None):
    req = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_http_json_numpy_and_handle_agree(server):
    x = images(3, seed=1)
    ref = loadmix.references(zoo_engine(MODEL), [{"input": x}])[0]["output"]
    got = {"handle": server["img"].infer.remote({"input": x}).result()["output"]}
    st, body = _post(server["url"] + "/img", json.dumps({"inputs": {"input": x.tolist()}}).encode())
    assert st == 200
    got["json"] = loadtest.serve_answer(loadtest.Result(st, body, {}, 0))["output"]
    got["npy"] = loadtest.serve_answer(loadtest.Result(*_post(server["url"] + "/img", loadtest.npy_body(
        {"input": x})), {}, 0))["output"]
    buf = io.BytesIO()
    np.savez(buf, input=x)
    st, body = _post(server["url"] + "/img/infer", buf.getvalue())
    got["npz"] = np.load(io.BytesIO(body))["output"]
    for k, v in got.items():
        np.testing.assert_allclose(v, ref, rtol=1e-5, atol=1e-5, err_msg=k)


def test_bad_requests_get_4xx_and_server_keeps_serving(server):
    url = server["url"] + "/img"
    cases = [b'{"inputs": {"image": [[1]]}}', b"not json", loadtest.npy_body({"input": images(1, 0)[:, :2]}),
             loadtest.npy_body({"input": images(1, 0).astype(np.float64)}),
             loadtest.npy_body({"input": images(17, 0)}), b"\x93NUMPY broken"]
    for body in cases:
        st, msg = _post(url, body)
        assert 400 <= st < 500, (st, msg)
        err = json.loads(msg)["error"]
        assert err and "\n" not in err
    st, _ = _post(url, loadtest.npy_body({"input": images(1, 0)}))
    assert st == 200


def test_engine_failure_fails_alone(server):
    ok = {"a": np.full((2, 4), 8, np.int64), "b": np.full((2, 4), 2, np.int64)}
    bad = {"a": np.ones((1, 4), np.int64), "b": np.zeros((1, 4), np.int64)}
    bodies = [(loadtest.npy_body(f), {}) for f in (ok, bad, ok, ok, bad, ok)]
    res, _ = loadtest.send_all(server["url"] + "/div", bodies, concurrency=6)
    assert [r.status for r in res] == [200, 500, 200, 200, 500, 200]
    assert "ZeroDivisionError" in json.loads(res[1].body)["error"]
    for r in (res[0], res[2], res[3], res[5]):
        assert (loadtest.serve_answer(r)["y"] == 4).all()
    m = json.loads(urllib.request.urlopen(server["url"] + "/div/metrics").read())
    assert m["failed_requests"] >= 2


def test_load_1000_concurrent_mixed_batches(server):
    feeds = loadmix.payloads()
    refs = loadmix.references(zoo_engine(MODEL), feeds)
    which = loadmix.plan(1000, len(feeds))
    bodies = [(loadtest.npy_body(feeds[p]), {}) for p in which]
    res, wall = loadtest.send_all(server["url"] + "/img", bodies, concurrency=1000)
    lost = [k for k, r in enumerate(res) if not isinstance(r, loadtest.Result) or r.status != 200]
    assert not lost, f"{len(lost)} requests lost or failed, e.g. {res[lost[0]]!r}"
    answers = [loadtest.serve_answer(r) for r in res]
    assert not loadmix.check_answers(answers, which, refs)
    rep = loadtest.report(res, wall, [feeds[p]["input"].shape[0] for p in which])
    m = json.loads(urllib.request.urlopen(server["url"] + "/img/metrics").read())
    print(f"\nRay Serve CPU load test ({MODEL}): {rep}; server: mean batch {m['mean_batch_rows']} rows, "
          f"latency {m['latency_ms']}")
    assert max(int(k) for k in m["batch_rows_histogram"]) <= 16
    assert m["mean_batch_rows"] > 2  # requests were batched together


def test_shutdown_finishes_in_flight_requests(server):
    x = images(2, seed=3)
    ref = loadmix.references(zoo_engine(MODEL), [{"input": x}])[0]["output"]
    pending = [server["img"].infer.remote({"input": x}) for _ in range(24)]  # <= max_ongoing_requests
    stopper = threading.Thread(target=serve.delete, args=("img",))
    stopper.start()
    outs = [p.result(timeout_s=120)["output"] for p in pending]
    stopper.join(timeout=120)
    assert "img" not in serve.status().applications
    for o in outs:
        np.testing.assert_allclose(o, ref, rtol=1e-5, atol=1e-5)
