"""Fixed forgeexec exports (layer info, profile, times) of a small two-stream FP16 network."""
from __future__ import annotations

import json


def _t(name, dims, dt="FP16"):
    return {"Name": name, "Location": "Device", "Dimensions": dims, "Format/Datatype": f"Row major linear {dt}"}


LAYERS = [
    {"Name": "conv1 + relu1", "LayerType": "fused.ConvAct", "TacticName": "aten:cudnn", "StreamId": 0,
     "Inputs": [_t("x", [1, 3, 8, 8]), _t("w", [4, 3, 3, 3]), _t("b", [4])], "Outputs": [_t("y", [1, 4, 8, 8])],
     "Metadata": "[ONNX Layer: conv1]\x1e[ONNX Layer: relu1]"},
    {"Name": "matmul", "LayerType": "MatMul", "TacticName": "triton:gemm", "StreamId": 0,
     "Inputs": [_t("a", [2, 16, 32]), _t("bw", [32, 64])], "Outputs": [_t("m", [2, 16, 64])],
     "Metadata": "[ONNX Layer: matmul]"},
    {"Name": "gemm", "LayerType": "fused.GemmAct", "TacticName": "aten:cublas", "StreamId": 1,
     "Inputs": [_t("g", [8, 32]), _t("gw", [64, 32])], "Outputs": [_t("go", [8, 64])],
     "Metadata": "[ONNX Layer: gemm]\x1e[ONNX Layer: gelu]"},
    {"Name": "attn", "LayerType": "fused.Attention", "TacticName": "aten:sdpa", "StreamId": 1,
     "Inputs": [_t("q", [1, 2, 16, 8]), _t("k", [1, 2, 32, 8]), _t("v", [1, 2, 32, 8])],
     "Outputs": [_t("o", [1, 2, 16, 8])], "Metadata": "[ONNX Layer: attn]"},
    {"Name": "softmax", "LayerType": "Softmax", "TacticName": "triton:softmax", "StreamId": 0,
     "Inputs": [_t("s", [4, 1000], "FP32")], "Outputs": [_t("p", [4, 1000], "FP32")],
     "Metadata": "[ONNX Layer: softmax]"},
]
# averageMs per layer: tensor-core layers 0.6 of 1.0 ms
TIMES = {"conv1 + relu1": 0.25, "matmul": 0.125, "gemm": 0.125, "attn": 0.1, "softmax": 0.4}


def write(tmp_path, with_start_end: bool = False) -> dict:
    """Write the three export files; return their paths by flag name."""
    prof = [{"count": 10}]
    t = 0.0
    for lay in LAYERS:
        ms = TIMES[lay["Name"]]
        e = {"name": lay["Name"], "timeMs": ms * 10, "averageMs": ms, "medianMs": ms, "percentage": ms * 100}
        if with_start_end:
            e.update(startMs=t, endMs=t + ms)
            t += ms
        prof.append(e)
    times = [{"startH2dMs": 2.0 * i, "endD2hMs": 2.0 * i + 1.2, "computeMs": 1.0, "latencyMs": 1.2}
             for i in range(5)]
    paths = {}
    for key, obj in (("profile", prof), ("layer_info", {"Layers": LAYERS, "Bindings": ["x", "p"]}),
                     ("times", times)):
        p = tmp_path / f"{key}.json"
        p.write_text(json.dumps(obj))
        paths[key] = str(p)
    return paths
