"""bench/garden_gpu.py on the CPU (--device cpu): the same build / compare / time / table code the GPU
run uses, so that the one device call works the first time. Models come from the garden cache (skipped
without a registry and without a cached copy)."""
import json
import os
import sys

import pytest

from .fetch import GardenUnavailable, model_by_name, model_path

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
from bench import garden_gpu  # noqa: E402
from bench.garden_table import markdown, verdict  # noqa: E402

SMALL = ["mtcnn_pnet", "ppocr_mobile_v2_cls"]  # a detector and a classifier (top-1), < 1 MiB together


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    """main() sets TF_GARDEN_CACHE / TF_GARDEN_OFFLINE for its run: restored after each test."""
    for k in ("TF_GARDEN_CACHE", "TF_GARDEN_OFFLINE"):
        monkeypatch.setenv(k, os.environ[k]) if k in os.environ else monkeypatch.delenv(k, raising=False)


def _models():
    try:
        for n in SMALL:
            model_path(model_by_name(n))
    except GardenUnavailable as e:
        pytest.skip(f"no package registry: {e}")


def test_cpu_run_reports_every_model_and_precision(tmp_path):
    _models()
    out, md = tmp_path / "g.json", tmp_path / "g.md"
    rc = garden_gpu.main(SMALL + ["--device", "cpu", "--test-shapes", "--opt-level", "0",
                                  "--json", str(out), "--markdown", str(md)])
    assert rc == 0
    res = json.loads(out.read_text())
    rows = res["rows"]
    assert {(r["model"], r["precision"]) for r in rows} == {(n, p) for n in SMALL for p in ("fp16", "tf32")}
    for r in rows:
        assert r["ok"] and r["cosine"] >= garden_gpu.MIN_COSINE and r["build_s"] >= 0, r
        assert r["gpu_ms"] > 0 and r["timing"] == "cpu", r
    assert [r["top1"] for r in rows if r["model"] == "ppocr_mobile_v2_cls"] == [1.0, 1.0]
    text = md.read_text()
    assert text == res["markdown"]
    table = [ln for ln in text.splitlines() if ln.startswith("| ") and not ln.startswith("| model")]
    assert len(table) == len(SMALL) and all(ln.rstrip().endswith("| ok |") for ln in table)
    assert res["environment"]["device"] == "cpu" and res["missing"] == []


def test_parallel_workers_give_the_same_rows(tmp_path):
    """--jobs 2: one worker process per model and precision, engines saved there and timed in the parent."""
    _models()
    out = tmp_path / "g.json"
    rc = garden_gpu.main(SMALL + ["--device", "cpu", "--test-shapes", "--opt-level", "0", "--jobs", "2",
                                  "--json", str(out)])
    rows = json.loads(out.read_text())["rows"]
    assert rc == 0 and [(r["model"], r["precision"]) for r in rows] == \
        [("ppocr_mobile_v2_cls", "fp16"), ("ppocr_mobile_v2_cls", "tf32"), ("mtcnn_pnet", "fp16"),
         ("mtcnn_pnet", "tf32")]  # manifest order
    assert all(r["ok"] and r["timing"] == "cpu" and "engine" not in r for r in rows), rows


def test_absent_model_is_missing_not_an_error(tmp_path):
    empty = tmp_path / "cache"
    empty.mkdir()
    out = tmp_path / "g.json"
    assert garden_gpu.main(["mtcnn_pnet", "--device", "cpu", "--cache", str(empty), "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["rows"] == [] and len(res["missing"]) == 1 and res["missing"][0].startswith("mtcnn_pnet")


def test_table_verdicts():
    env = {"device": "cuda", "gpu": "H200", "date": "d", "tensorforge": "0", "torch": "t", "triton": "3",
           "onnxruntime": "1", "opt_level": 3, "shapes": "s", "jobs": 8, "seconds": 1.0}
    ok = {"model": "a", "class": "classifier", "precision": "fp16", "build_s": 1.0, "cosine": 0.9999,
          "top1": 1.0, "ok": True, "gpu_ms": 0.5, "timing": "CUDA graph", "shapes": {"x": [1, 3]}}
    low = dict(ok, precision="tf32", cosine=0.99, top1=0.5, ok=False, gpu_ms=2.0, timing="graph 3/9 + eager")
    assert verdict([ok]) == "ok" and verdict([ok, low]).startswith("BELOW: tf32 cos 0.9900 top-1 50%")
    assert verdict([ok, {"precision": "tf32", "skipped": "budget"}]) == "partly run"
    assert verdict([ok, {"precision": "tf32", "error": "E"}]) == "fails"
    text = markdown([ok, low], env, ["b (absent)"], 0.999)
    row = next(ln for ln in text.splitlines() if ln.startswith("| a |"))
    assert "| 0.500 |" in row and "2.000 (graph 3/9 + eager)" in row and "x 1x3" in row
    assert "- b (absent)" in text and "under contention" in text and "H200" in text
