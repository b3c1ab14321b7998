"""--exportTimes / --exportOutput / --dumpOutput layouts and the layer information JSON."""
from __future__ import annotations

import json

import numpy as np

from tensorforge.cli.forgeexec.exports import dump_output_lines, output_json, times_json
from tensorforge.cli.forgeexec.layerinfo import layer_info, oneline, tactic_value, to_json
from tensorforge.cli.forgeexec.stats import Trace

TIME_FIELDS = ["startEnqMs", "endEnqMs", "startH2dMs", "endH2dMs", "startComputeMs", "endComputeMs", "startD2hMs",
               "endD2hMs", "h2dMs", "computeMs", "d2hMs", "latencyMs"]


def test_times_json_skips_warmup_and_has_fields():
    traces = [Trace(0, 0, 0.5, 0, 0.25, 0.25, 1.25, 1.25, 1.5), Trace(0, 2, 2.5, 2, 2.25, 2.25, 3.25, 3.25, 3.5),
              Trace(1, 4, 4.5, 4, 4.25, 4.25, 5.75, 5.75, 6.0)]
    text = times_json(traces, 1)
    lines = text.splitlines()
    assert lines[0] == "[" and lines[1].startswith("  { ") and lines[2].startswith(", { ") and lines[3] == "]"
    data = json.loads(text)
    assert len(data) == 2 and list(data[0]) == TIME_FIELDS
    assert data[1]["computeMs"] == 1.5 and data[1]["latencyMs"] == 2.0 and data[0]["startEnqMs"] == 2


def test_output_json_dimensions_string():
    outs = {"prob": np.arange(6, dtype=np.float32).reshape(1, 6) / 4, "ids": np.array([[1, 2]], dtype=np.int64)}
    data = json.loads(output_json(outs))
    assert data[0] == {"name": "prob", "dimensions": "1x6", "values": [0, 0.25, 0.5, 0.75, 1, 1.25]}
    assert data[1] == {"name": "ids", "dimensions": "1x2", "values": [1, 2]}


def test_output_json_nan_is_readable():
    data = json.loads(output_json({"y": np.array([np.nan, np.inf], dtype=np.float32)}))
    assert np.isnan(data[0]["values"][0]) and data[0]["values"][1] == float("inf")


def test_dump_output_lines():
    assert dump_output_lines({"y": np.array([[0.5, -1.0]], dtype=np.float32)}) == [
        "Output Tensors:", "y: (1x2)", "0.5 -1"]


class _Desc:
    def __init__(self, name, shape, dtype="float32"):
        self.name, self.shape, self.dtype = name, shape, dtype


class _Layer:
    def __init__(self, name, type_, inputs, outputs, origin, attrs=None, tactic="aten:conv2d"):
        self.name, self.type, self.inputs, self.outputs, self.origin = name, type_, inputs, outputs, origin
        self.attrs, self.tactic, self.precision = attrs or {}, tactic, "float32"


class _Engine:
    inputs = [_Desc("x", (-1, 3, 8, 8))]
    outputs = [_Desc("y", (-1, 4))]
    layers = [_Layer("conv1 + relu1", "Conv", ["x", "w"], ["r"], ["conv1", "relu1"],
                     {"pads": [1, 1, 1, 1], "activation": "relu"}),
              _Layer("fc", "Gemm", ["r"], ["y"], ["fc"], tactic="")]


def test_layer_info_names_only():
    assert layer_info(_Engine(), None, "layer_names_only") == {"Layers": ["conv1 + relu1", "fc"],
                                                               "Bindings": ["x", "y"]}
    assert oneline({"Layers": ["a"], "Bindings": ["x"]}) == ["Layers:", "a", "", "Bindings:", "x"]


def test_layer_info_detailed():
    info = json.loads(to_json(layer_info(_Engine(), None, "detailed")))
    conv, fc = info["Layers"]
    assert info["Bindings"] == ["x", "y"]
    assert conv["Name"] == "conv1 + relu1" and conv["LayerType"] == "Conv"
    assert conv["Inputs"][0] == {"Name": "x", "Location": "Device", "Dimensions": [-1, 3, 8, 8],
                                 "Format/Datatype": "Row major linear FP32"}
    assert conv["Metadata"] == "[ONNX Layer: conv1]\x1e[ONNX Layer: relu1]"
    assert conv["ParameterType"] == "Convolution" and conv["PrePadding"] == [1, 1] and conv["HasReLU"] == 1
    assert conv["TacticValue"] == tactic_value("aten:conv2d") and len(conv["TacticValue"]) == 18
    assert conv["TacticValue"].startswith("0x") and conv["StreamId"] == 0
    assert fc["TacticValue"] == "0x0000000000000000" and "ParameterType" not in fc


def test_tactic_value_is_stable():
    assert tactic_value("aten:conv2d") == tactic_value("aten:conv2d") != tactic_value("aten:mm")
