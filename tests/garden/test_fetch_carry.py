"""tests.garden.fetch --carry: models copied into a folder in the cache layout are found there offline
(what the GPU machine does with a carried folder), sha256 checked."""
import os
import subprocess
import sys

import pytest

from tests.garden import fetch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_carried_models_load_offline(tmp_path):
    try:
        fetch.model_path(fetch.model_by_name("silero_vad"))
    except fetch.GardenUnavailable as e:
        pytest.skip(str(e))
    r = subprocess.run([sys.executable, "-m", "tests.garden.fetch", "--carry", str(tmp_path / "c"), "silero_vad"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "1 model(s)" in r.stdout, r.stderr
    code = ("from tests.garden.fetch import model_by_name, model_path; "
            "print(model_path(model_by_name('silero_vad')))")
    env = dict(os.environ, TF_GARDEN_CACHE=str(tmp_path / "c"), TF_GARDEN_OFFLINE="1")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip().startswith(str(tmp_path / "c")), r.stderr
