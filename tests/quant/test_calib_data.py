"""Calibration data for tensorforge quantize: image folders sized to the model's input, .npz arrays
checked against the inputs, the model's fixed batch honoured; every mismatch a one-line error."""
import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tensorforge.cli.main import main
from tensorforge.errors import TensorforgeError
from tensorforge.quant import load_batches
from tensorforge.testing import make_model

PIL = pytest.importorskip("PIL.Image")


def _images(folder, sizes, mode="RGB"):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate(sizes):
        shape = (h, w, 3) if mode == "RGB" else (h, w)
        PIL.fromarray((rng.random(shape) * 255).astype(np.uint8), mode).save(folder / f"{i}.png")
    (folder / "README.txt").write_text("not an image")  # other files are ignored
    return str(folder)


def test_images_resized_to_the_input_when_no_spec(tmp_path):
    d = _images(tmp_path / "imgs", [(300, 280), (120, 90), (64, 64), (500, 40)])
    feeds = load_batches(d, ["x"], {"x": [None, 3, 48, 96]}, batch=2)
    assert [f["x"].shape for f in feeds] == [(2, 3, 48, 96)] * 2 and feeds[0]["x"].dtype == np.float32
    nhwc = load_batches(d, ["x"], {"x": [None, 32, 16, 3]}, batch=4, spec="layout=NHWC")
    assert nhwc[0]["x"].shape == (4, 32, 16, 3)


def test_gray_input_and_fixed_batch(tmp_path):
    d = _images(tmp_path / "imgs", [(40, 30)] * 5)
    feeds = load_batches(d, ["x"], {"x": [1, 1, 24, 24]}, batch=8)  # the model's batch of 1 wins
    assert [f["x"].shape for f in feeds] == [(1, 1, 24, 24)] * 5


@pytest.mark.parametrize("shapes, spec, needle", [
    ({"x": [None, 3, 64, 64]}, "resize=256,crop=224", "preprocess to 224x224 but input 'x' takes 64x64"),
    ({"x": [None, 3, 64]}, None, "needs a 4-D image input"),
    ({"x": [None, 3, 8, 8], "y": [None, 4]}, None, "feeds one image input"),
    ({"x": [None, 5, 8, 8]}, None, "has 5 channels"),
    ({"x": [None, 3, 8, 8]}, "mean=0.1:0.2", "mean has 2 values for 3 channels"),
    ({"x": [None, 3, 8, 8]}, "layout=CHWN", "NCHW or NHWC"),
])
def test_image_mismatches_are_one_line_errors(tmp_path, shapes, spec, needle):
    d = _images(tmp_path / "imgs", [(40, 30)] * 2)
    with pytest.raises(TensorforgeError, match=re.escape(needle)):
        load_batches(d, list(shapes), shapes, spec=spec)


def test_unknown_sizes_must_agree_and_bad_files_are_named(tmp_path):
    d = _images(tmp_path / "imgs", [(40, 30), (20, 20)])
    with pytest.raises(TensorforgeError, match="different sizes"):
        load_batches(d, ["x"], {"x": [None, 3, None, None]})
    crop = load_batches(d, ["x"], {"x": [None, 3, None, None]}, spec="resize=16,crop=16")
    assert crop[0]["x"].shape == (1, 3, 16, 16)
    (tmp_path / "imgs" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(TensorforgeError, match="broken.png: cannot read the image"):
        load_batches(d, ["x"], {"x": [None, 3, 8, 8]})


def test_npz_checked_against_the_inputs(tmp_path):
    shapes, types = {"a": [None, 4], "b": [None, 4]}, {"a": np.float32, "b": np.int64}
    p = tmp_path / "ok.npz"
    np.savez(p, a=np.random.rand(6, 4), b=np.arange(24, dtype=np.int32).reshape(6, 4))  # float64, int32: cast
    feeds = load_batches(str(p), ["a", "b"], shapes, batch=4, types=types)
    assert len(feeds) == 1 and feeds[0]["a"].dtype == np.float32 and feeds[0]["b"].dtype == np.int64
    cases = [(dict(a=np.zeros((2, 5), np.float32), b=np.zeros((2, 4), np.int64)),
              "has shape 2x5, input 'a' takes ?x4"),
             (dict(a=np.zeros((2, 4), np.float32), b=np.zeros((2, 4), np.float32)), "is float32, input 'b' takes int64"),
             (dict(a=np.zeros((2, 4), np.float32), b=np.zeros((3, 4), np.int64)), "different lengths"),
             (dict(a=np.zeros((2, 4), np.float32)), "no array for input")]
    for i, (arrays, needle) in enumerate(cases):
        q = tmp_path / f"bad{i}.npz"
        np.savez(q, **arrays)
        with pytest.raises(TensorforgeError, match=re.escape(needle)):
            load_batches(str(q), ["a", "b"], shapes, types=types)
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 junk")
    with pytest.raises(TensorforgeError, match="cannot read the .npz"):
        load_batches(str(tmp_path / "junk.npz"), ["a", "b"], shapes, types=types)


def test_cli_image_calibration_of_a_fixed_size_model(tmp_path, capsys):
    """Real-size photos calibrate a 32x32 model without any --preprocess (resized to the input)."""
    m = make_model([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])],
                   [("x", TensorProto.FLOAT, ["N", 3, 32, 32])], [("y", TensorProto.FLOAT, None)],
                   [onnx.numpy_helper.from_array(np.random.default_rng(1).standard_normal((8, 3, 3, 3))
                                                 .astype(np.float32), "w")])
    onnx.save(m, str(tmp_path / "m.onnx"))
    d = _images(tmp_path / "imgs", [(640, 480), (300, 500)])
    assert main(["quantize", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "q.onnx"), "--calib-data", d,
                 "--calibrator", "max"]) == 0
    assert "QuantizeLinear" in capsys.readouterr().out
    np.savez(tmp_path / "wrong.npz", x=np.zeros((2, 3, 16, 16), np.float32))
    assert main(["quantize", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "q2.onnx"),
                 "--calib-data", str(tmp_path / "wrong.npz")]) == 2
    assert "has shape 2x3x16x16, input 'x' takes ?x3x32x32" in capsys.readouterr().err
