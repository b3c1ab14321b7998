"""The runtime stands alone: loading and running an engine imports no optimizer module, and the CLIs
print their help without importing torch."""
import json
import os
import subprocess
import sys

import pytest

import tensorforge as tf
from tensorforge.testing import rand

from ..core.models import conv_net

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FORBIDDEN = ("onnx", "sympy", "triton", "tensorforge.frontend", "tensorforge.passes", "tensorforge.builder",
             "tensorforge.zoo")


def _child(code: str) -> dict:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


_LOADED = """
import sys, json
def loaded(prefixes):
    return sorted(m for m in sys.modules if any(m == p or m.startswith(p + '.') for p in prefixes))
"""


def test_load_and_infer_import_no_optimizer(tmp_path):
    engine = tf.Builder(tf.BuilderConfig(device="cpu")).build(conv_net())
    path = tmp_path / "m.engine"
    engine.save(path)
    import torch
    x = torch.as_tensor(rand((2, 3, 16, 16), seed=3))
    torch_path = tmp_path / "x.pt"
    torch.save(x, torch_path)
    want = engine.create_execution_context().infer({"x": x})["y"]
    got = _child(_LOADED + f"""
import torch
import tensorforge.runtime
after_import = loaded({FORBIDDEN!r})
from tensorforge.runtime import Engine
eng = Engine.load({str(path)!r})
y = eng.create_execution_context().infer({{"x": torch.load({str(torch_path)!r})}})["y"]
print(json.dumps({{"import": after_import, "run": loaded({FORBIDDEN!r}), "y": y.tolist()}}))
""")
    assert got["import"] == [] and got["run"] == []
    assert torch.equal(torch.tensor(got["y"]), want)


def test_package_import_is_lazy():
    got = _child(_LOADED + f"""
import tensorforge
print(json.dumps({{"mods": loaded({FORBIDDEN!r} + ("torch", "tensorforge.runtime")),
                   "has": "Builder" in dir(tensorforge)}}))
""")
    assert got == {"mods": [], "has": True}
    with pytest.raises(AttributeError):
        tf.NoSuchName  # noqa: B018


@pytest.mark.parametrize("module", ["tensorforge.cli.forgeexec.main", "tensorforge.cli.main"])
def test_cli_help_is_fast_and_needs_no_torch(module):
    got = _child(f"""
import io, json, runpy, sys, time, contextlib
t0 = time.perf_counter()
sys.argv = [{module!r}, "--help"]
buf = io.StringIO()
code = 0
with contextlib.redirect_stdout(buf):
    try:
        runpy.run_module({module!r}, run_name="__main__")
    except SystemExit as e:
        code = e.code or 0
print(json.dumps({{"s": time.perf_counter() - t0, "torch": "torch" in sys.modules, "code": code,
                   "text": buf.getvalue()[-400:]}}))
""")
    assert got["code"] == 0 and "--" in got["text"]
    assert not got["torch"]
    assert got["s"] < 1.0, f"{module} --help took {got['s']:.2f} s"


def test_gpu_kernel_planning_needs_no_sympy():
    """What the CUDA kernels compute when a context plans them (here the Triton pool's and the conv's
    output sizes, which imported sympy at the first inference on an H200) is integer math."""
    r = _child(_LOADED + f"""
import tensorforge.runtime
from tensorforge.kernels.triton.pool import window_geometry
from tensorforge.ops.spatial import pool_out_dim
g = window_geometry({{"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}}, "MaxPool", 112, 112)
n = pool_out_dim(224, 7, 2, 1, 3, 3)
print(json.dumps({{"mods": loaded({FORBIDDEN!r}), "g": [g["OH"], g["OW"]], "n": n}}))
""")
    assert r == {"mods": [], "g": [56, 56], "n": 112}, r
