"""A command that needs an optional module the user has not installed says which and how to get it
(one line, the extra's pip command), never 'internal error'."""
import sys

import numpy as np
import onnx
import pytest
from PIL import Image

from tensorforge import zoo
from tensorforge.cli.forgeexec.main import main as forgeexec
from tensorforge.cli.main import main


@pytest.fixture
def model(tmp_path):
    p = tmp_path / "m.onnx"
    onnx.save(zoo.get_model("mobilenetv2_small"), str(p))
    return str(p)


@pytest.mark.parametrize("missing, argv, rc", [
    ("onnxruntime", ["compare", "{m}"], 1),
    ("onnxruntime", ["quantize", "{m}", "-o", "{d}/q.onnx"], 2),
    ("PIL", ["quantize", "{m}", "-o", "{d}/q.onnx", "--calib-data", "{d}/imgs"], 2),
])
def test_tensorforge_names_the_extra(model, tmp_path, capsys, monkeypatch, missing, argv, rc):
    (tmp_path / "imgs").mkdir()
    Image.fromarray(np.zeros((70, 90, 3), np.uint8)).save(tmp_path / "imgs" / "a.png")
    monkeypatch.setitem(sys.modules, missing, None)  # `import missing` raises ModuleNotFoundError
    assert main([a.format(m=model, d=tmp_path) for a in argv]) == rc
    err = capsys.readouterr().err
    assert "internal error" not in err and "pip install 'tensorforge[quant]'" in err and err.count("\n") == 1, err


def test_forgeexec_names_the_extra(model, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert forgeexec([f"--onnx={model}", "--int8", "--iterations=1", "--duration=0", "--warmUp=0"]) != 0
    out = capsys.readouterr()
    assert "[E] this needs ONNX Runtime" in out.out + out.err and "Internal error" not in out.out + out.err
