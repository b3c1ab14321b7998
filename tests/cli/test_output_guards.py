"""tensorforge commands that write files never overwrite their inputs: an output naming an input file,
or two outputs naming one file, is refused in one line (exit 2) and every file is left as it was."""
import hashlib

import onnx
import pytest

from tensorforge import zoo
from tensorforge.cli.main import main


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("guards")
    onnx.save(zoo.get_model("mobilenetv2_small"), str(d / "m.onnx"))
    assert main(["quantize", str(d / "m.onnx"), "-o", str(d / "q.onnx"), "--write-cache", str(d / "c.cache")]) == 0
    return d


@pytest.mark.parametrize("argv, needle", [
    (["quantize", "{d}/m.onnx", "-o", "{d}/m.onnx"], "-o {d}/m.onnx is the input model"),
    (["quantize", "{d}/m.onnx", "-o", "{d}/x.onnx", "--write-cache", "{d}/m.onnx"], "is the input model"),
    (["quantize", "{d}/m.onnx", "-o", "{d}/c.cache", "--calib-cache", "{d}/c.cache"], "the --calib-cache input"),
    (["quantize", "{d}/m.onnx", "-o", "{d}/y.onnx", "--write-cache", "{d}/y.onnx"], "name the same file"),
    (["refit", "{d}/q.onnx", "{d}/m.onnx", "-o", "{d}/m.onnx"], "is the input model"),
    (["report", "{d}/m.onnx", "-o", "{d}/m.onnx"], "is the input model"),
    (["report", "{d}/m.onnx", "--timingCacheFile", "{d}/m.onnx"], "is the input model"),
])
def test_outputs_never_overwrite_inputs(files, capsys, argv, needle):
    before = {p.name: _digest(p) for p in files.iterdir()}
    assert main([a.format(d=files) for a in argv]) == 2
    err = capsys.readouterr().err
    assert needle.format(d=files) in err and err.count("\n") == 1, err
    assert {p.name: _digest(p) for p in files.iterdir()} == before


def test_quantize_output_written_atomically(files, monkeypatch):
    """A write that fails half-way leaves the existing output as it was (temp file + rename)."""
    from tensorforge import fileio
    out = files / "q.onnx"
    before = _digest(out)

    def broken(f, data):
        f.write(b"partial")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(fileio, "_write_all", broken)
    assert main(["quantize", str(files / "m.onnx"), "-o", str(out)]) == 2
    assert _digest(out) == before and not [p for p in files.iterdir() if p.name.endswith(".tmp")]
