"""export-triton: the model repository it writes, then that repository served by PyTriton's bundled
tritonserver (Python backend) over loopback: answers, bad requests, failure isolation, 1,000-request load."""
import json
import os
import urllib.error
import urllib.request

import numpy as np
import pytest

from tensorforge.cli.main import main as cli
from tensorforge.serve import loadtest

from . import loadmix
from .conftest import free_port
from .engines import div_engine, images, zoo_engine

MODEL = "mobilenetv2_small"


def test_export_writes_repository(tmp_path, capsys):
    repo = str(tmp_path / "repo")
    assert cli(["export-triton", zoo_engine(MODEL), repo, "--model-name", "img", "--max-wait-ms", "2"]) == 0
    cfg = open(os.path.join(repo, "img", "config.pbtxt")).read()
    for line in ('name: "img"', 'backend: "python"', "max_batch_size: 16", "data_type: TYPE_FP32",
                 "dims: [ 3, 64, 64 ]", "dims: [ 1000 ]", "preferred_batch_size: [ 8, 16 ]",
                 "max_queue_delay_microseconds: 2000", "kind: KIND_CPU"):
        assert line in cfg, line
    assert sorted(os.listdir(os.path.join(repo, "img", "1"))) == ["model.engine", "model.py"]
    assert cli(["export-triton", zoo_engine(MODEL), repo, "--model-name", "img"]) == 2  # exists
    assert "--overwrite" in capsys.readouterr().err


def test_export_never_deletes_what_it_did_not_write(tmp_path, capsys):
    """--overwrite replaces only a model folder (with a config.pbtxt) that does not hold the engine
    being exported; a repository path that is a file is refused; nothing is lost either way."""
    eng = zoo_engine(MODEL)
    repo = tmp_path / "repo"
    (repo / "img").mkdir(parents=True)
    (repo / "img" / "notes.txt").write_text("mine")
    assert cli(["export-triton", eng, str(repo), "--model-name", "img", "--overwrite"]) == 2
    assert "not a Triton model folder" in capsys.readouterr().err and (repo / "img" / "notes.txt").exists()
    assert cli(["export-triton", eng, str(repo), "--model-name", "ok"]) == 0
    inner = str(repo / "ok" / "1" / "model.engine")
    assert cli(["export-triton", inner, str(repo), "--model-name", "ok", "--overwrite"]) == 2
    assert "lies in" in capsys.readouterr().err and os.path.getsize(inner) > 0
    before = open(eng, "rb").read()
    assert cli(["export-triton", eng, eng]) == 2
    assert "not a directory" in capsys.readouterr().err and open(eng, "rb").read() == before


@pytest.fixture(scope="module")
def triton(tmp_path_factory):
    pytest.importorskip("pytriton", reason="nvidia-pytriton not installed (pip install 'tensorforge[serve]')")
    pytest.importorskip("aiohttp", reason="aiohttp not installed")
    from pytriton.triton import TRITON_ACCESS_HEADER, Triton, TritonConfig, TritonSecurityConfig
    repo = str(tmp_path_factory.mktemp("triton") / "repo")
    assert cli(["export-triton", zoo_engine(MODEL), repo, "--model-name", "img", "--max-wait-ms", "10"]) == 0
    assert cli(["export-triton", div_engine(), repo, "--model-name", "div", "--max-wait-ms", "50"]) == 0
    port, mport = free_port(), free_port()
    cfg = TritonConfig(model_repository=repo, http_address="127.0.0.1", http_port=port,
                       grpc_address="127.0.0.1", grpc_port=free_port(), metrics_port=mport)
    sec = TritonSecurityConfig()  # PyTriton's default: a token guards the shared-memory API (kept for the shm test)
    with Triton(config=cfg, security_config=sec) as server:  # explicit model control, loads every model
        server.run()
        yield {"url": f"http://127.0.0.1:{port}/v2/models", "metrics": f"http://127.0.0.1:{mport}/metrics",
               "base": f"http://127.0.0.1:{port}",
               "token": {TRITON_ACCESS_HEADER: sec.access_token} if sec.access_token else {}}


def _counter(metrics_url, name, model):
    """A Prometheus counter of Triton's metrics endpoint for one model."""
    for line in urllib.request.urlopen(metrics_url).read().decode().splitlines():
        if line.startswith(name + "{") and f'model="{model}"' in line:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} for {model} not in Triton's metrics")


def _infer(url, feed, outputs):
    body, headers = loadtest.triton_body(feed, outputs)
    res, _ = loadtest.send_all(url + "/infer", [(body, headers)], concurrency=1)
    return res[0]


def test_answers_match_python_api(triton):
    x = images(3, seed=1)
    ref = loadmix.references(zoo_engine(MODEL), [{"input": x}])[0]["output"]
    r = _infer(triton["url"] + "/img", {"input": x}, ["output"])
    assert r.status == 200, r.body[:300]
    np.testing.assert_allclose(loadtest.triton_answer(r)["output"], ref, rtol=1e-5, atol=1e-5)
    body = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
    with urllib.request.urlopen(urllib.request.Request(triton["url"] + "/img/infer", json.dumps(body).encode())) as resp:
        out = json.loads(resp.read())["outputs"][0]
    np.testing.assert_allclose(np.asarray(out["data"], np.float32).reshape(out["shape"]), ref, rtol=1e-5, atol=1e-5)


def test_bad_requests_get_4xx(triton):
    x = images(1, seed=0)
    for feed in ({"image": x}, {"input": x.astype(np.float64)}, {"input": x[:, :2]}, {"input": images(17, 0)}):
        r = _infer(triton["url"] + "/img", feed, ["output"])
        assert 400 <= r.status < 500, (r.status, r.body[:300])
        assert json.loads(r.body)["error"]
    r, _ = loadtest.send_all(triton["url"] + "/img/infer", [(b"{not json", {})], concurrency=1)
    # Triton's own HTTP frontend answers an unparsable body 500 (before any model code runs)
    assert r[0].status in (400, 500) and "failed to parse" in json.loads(r[0].body)["error"]
    assert _infer(triton["url"] + "/img", {"input": x}, ["output"]).status == 200


def test_engine_failure_fails_alone(triton):
    ok = {"a": np.full((2, 4), 8, np.int64), "b": np.full((2, 4), 2, np.int64)}
    bad = {"a": np.ones((1, 4), np.int64), "b": np.zeros((1, 4), np.int64)}
    bodies = [loadtest.triton_body(f, ["y"]) for f in (ok, bad, ok, ok, bad, ok)]
    res, _ = loadtest.send_all(triton["url"] + "/div/infer", bodies, concurrency=6)
    assert [r.status for r in res] == [200, 500, 200, 200, 500, 200], [r.body[:200] for r in res]
    assert "ZeroDivisionError" in json.loads(res[1].body)["error"]
    for r in (res[0], res[2], res[3], res[5]):
        assert (loadtest.triton_answer(r)["y"] == 4).all()


def test_load_1000_concurrent_mixed_batches(triton):
    """1,000 requests in flight at once (loopback); every answer equals its single-request result."""
    feeds = loadmix.payloads()
    refs = loadmix.references(zoo_engine(MODEL), feeds)
    which = loadmix.plan(1000, len(feeds))
    res, wall = loadtest.send_all(triton["url"] + "/img/infer", [loadtest.triton_body(feeds[p], ["output"]) for p in which],
                                  concurrency=1000)
    lost = [k for k, r in enumerate(res) if not isinstance(r, loadtest.Result) or r.status != 200]
    assert not lost, f"{len(lost)} requests lost or failed, e.g. {res[lost[0]]!r}"
    assert not loadmix.check_answers([loadtest.triton_answer(r) for r in res], which, refs)
    rep = loadtest.report(res, wall, [feeds[p]["input"].shape[0] for p in which])
    rows = _counter(triton["metrics"], "nv_inference_count", "img")
    execs = _counter(triton["metrics"], "nv_inference_exec_count", "img")
    print(f"\nTriton CPU load test ({MODEL}): {rep}; {rows:.0f} rows in {execs:.0f} executions")
    assert execs < rows / 2  # the dynamic batcher merged requests


def test_inputs_from_system_shared_memory(triton):
    """Clients on the host may put inputs in a system shared-memory region and send only their offsets
    (Triton's high-throughput mode; bench/serve.py --triton-shm): mixed batches answered as the Python API
    answers them, and the region is gone afterwards."""
    feeds = loadmix.payloads()
    refs = loadmix.references(zoo_engine(MODEL), feeds)
    which = loadmix.plan(300, len(feeds))
    with loadtest.TritonShm(triton["base"], feeds, ["output"], triton["token"], region="test_inputs") as shm:
        assert all(len(b) < 1000 for b, _ in shm.bodies)  # offsets, not payloads
        name = shm.shm.name
        res, _ = loadtest.send_all(triton["url"] + "/img/infer", [shm.bodies[p] for p in which], concurrency=300)
    assert all(isinstance(r, loadtest.Result) and r.status == 200 for r in res), \
        next(r for r in res if not isinstance(r, loadtest.Result) or r.status != 200)
    assert not loadmix.check_answers([loadtest.triton_answer(r) for r in res], which, refs)
    assert not os.path.exists(f"/dev/shm/{name}")
    with pytest.raises(urllib.error.HTTPError):  # registering without PyTriton's token: 403
        loadtest.TritonShm(triton["base"], feeds[:1], ["output"], {}, region="no_token")
