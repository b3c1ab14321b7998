"""forgeexec with shape-tensor inputs: --shapes/--min/opt/maxShapes give their VALUES (trtexec semantics)."""
from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto as T
from onnx import helper as h

from tensorforge.cli.forgeexec.inputs import random_input
from tensorforge.frontend.shape_tensors import shape_tensor_inputs
from tensorforge.testing import make_model

from .forgeexec_helpers import FAST


def _model(path, batch="N"):
    """y = Reshape(Relu(x), shape) with x:[batch, 12] and the int64 shape tensor `shape` [2]."""
    nodes = [h.make_node("Relu", ["x"], ["r"], name="relu"), h.make_node("Reshape", ["r", "shape"], ["y"],
                                                                         name="reshape")]
    m = make_model(nodes, [("x", T.FLOAT, [batch, 12]), ("shape", T.INT64, [2])], [("y", T.FLOAT, None)])
    onnx.save(m, str(path))
    return str(path)


def _check_output(out_json, x_shape, values):
    """The exported y has dimensions `values` and matches ONNX Runtime on the same random x."""
    output = json.load(open(out_json))
    assert output[0]["name"] == "y" and output[0]["dimensions"] == "x".join(map(str, values))
    x = random_input("x", "float32", x_shape, {}, np.random.default_rng(0)).numpy()
    return output, x


def _ort(path, x, values):
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x, "shape": np.array(values, np.int64)})[0]


def test_helper_finds_shape_tensor_inputs(tmp_path):
    assert shape_tensor_inputs(onnx.load(_model(tmp_path / "m.onnx"))) == ["shape"]


def test_shapes_give_values_and_output_matches_ort(cli, tmp_path):
    path, o = _model(tmp_path / "m.onnx"), str(tmp_path / "o.json")
    rc, out, err = cli(f"--onnx={path}", "--shapes=x:2x12,shape:4x6", *FAST, f"--exportOutput={o}")
    assert rc == 0, err
    assert "Set input shape tensor shape for optimization profile 0 to: MIN=4x6 OPT=4x6 MAX=4x6" in out
    output, x = _check_output(o, (2, 12), (4, 6))
    np.testing.assert_allclose(np.array(output[0]["values"]).reshape(4, 6), _ort(path, x, [4, 6]),
                               rtol=1e-5, atol=1e-6)


def test_min_opt_max_values_profile_and_run_inside(cli, tmp_path):
    path, o = _model(tmp_path / "m.onnx"), str(tmp_path / "o.json")
    prof = ("--minShapes=x:1x12,shape:1x1", "--optShapes=x:2x12,shape:4x6", "--maxShapes=x:4x12,shape:48x48")
    rc, out, err = cli(f"--onnx={path}", *prof, "--shapes=x:3x12,shape:9x4", *FAST, f"--exportOutput={o}")
    assert rc == 0, err
    assert "MIN=1x1 OPT=4x6 MAX=48x48" in out
    output, x = _check_output(o, (3, 12), (9, 4))
    np.testing.assert_allclose(np.array(output[0]["values"]).reshape(9, 4), _ort(path, x, [9, 4]),
                               rtol=1e-5, atol=1e-6)
    # without --shapes: x at opt 2x12 and the profile's opt values 4x6
    rc, out, err = cli(f"--onnx={path}", *prof, *FAST, f"--exportOutput={o}")
    assert rc == 0, err
    _check_output(o, (2, 12), (4, 6))


def test_value_outside_profile_is_one_line_error(cli, tmp_path):
    path = _model(tmp_path / "m.onnx")
    rc, out, err = cli(f"--onnx={path}", "--minShapes=x:1x12,shape:1x1", "--optShapes=x:2x12,shape:4x6",
                       "--maxShapes=x:4x12,shape:8x8", "--shapes=x:4x12,shape:2x24", *FAST)
    assert rc == 1
    lines = [ln for ln in (out + err).splitlines() if "[E]" in ln and "outside optimization profile" in ln]
    assert len(lines) == 1 and "shape" in lines[0]


def test_static_model_takes_shape_tensor_values_and_missing_default_to_ones(cli, tmp_path):
    path, o = _model(tmp_path / "m.onnx", batch=1), str(tmp_path / "o.json")  # x is static: only `shape` varies
    rc, out, err = cli(f"--onnx={path}", "--minShapes=shape:1x1", "--optShapes=shape:2x6",
                       "--maxShapes=shape:12x12", *FAST, f"--exportOutput={o}")
    assert rc == 0, err
    _check_output(o, (1, 12), (2, 6))
    rc, out, err = cli(f"--onnx={path}", "--shapes=shape:3x4", *FAST, f"--exportOutput={o}")
    assert rc == 0, err
    _check_output(o, (1, 12), (3, 4))
    rc, out, err = cli(f"--onnx={path}", "--minShapes=x:1x12,shape:1x1", "--optShapes=x:1x12,shape:2x6",
                       "--maxShapes=x:1x12,shape:12x12", *FAST)  # explicit shapes for a static data input
    assert rc != 0 and "Static model does not take explicit shapes" in out + err
    rc, out, err = cli(f"--onnx={path}", *FAST)  # no values: all 1s (then Reshape 12 -> 1x1 fails at run time)
    assert "Values missing for input shape tensor: shape. Automatically setting values to: 1x1" in err
    assert "MIN=1x1 OPT=1x1 MAX=1x1" in out and rc == 1


def test_save_load_round_trip_and_load_inputs(cli, tmp_path):
    path, eng, o = _model(tmp_path / "m.onnx"), str(tmp_path / "m.engine"), str(tmp_path / "o.json")
    rc, out, err = cli(f"--onnx={path}", "--minShapes=x:1x12,shape:1x1", "--optShapes=x:2x12,shape:4x6",
                       "--maxShapes=x:4x12,shape:48x48", f"--saveEngine={eng}", *FAST)
    assert rc == 0, err
    rc, out, err = cli(f"--loadEngine={eng}", "--shapes=x:4x12,shape:8x6", *FAST, f"--exportOutput={o}")
    assert rc == 0, err
    output, x = _check_output(o, (4, 12), (8, 6))
    np.testing.assert_allclose(np.array(output[0]["values"]).reshape(8, 6), _ort(path, x, [8, 6]),
                               rtol=1e-5, atol=1e-6)
    vals = tmp_path / "shape.bin"
    np.array([2, 24], np.int64).tofile(vals)
    rc, out, err = cli(f"--loadEngine={eng}", "--shapes=x:4x12", f"--loadInputs=shape:{vals}", *FAST,
                       f"--exportOutput={o}")
    assert rc == 0, err
    _check_output(o, (4, 12), (2, 24))
