"""Layer information (IEngineInspector-like): JSON for --exportLayerInfo and one-line text for --dumpLayerInfo."""
from __future__ import annotations

import hashlib
import json
import re

from . import api

_NUM_LIST = re.compile(r"\[\s*(-?\d+(?:\s*,\s*-?\d+)*)\s*\]")
DTYPE_NAMES = {"float32": "FP32", "float16": "FP16", "bfloat16": "BF16", "int8": "Int8", "int32": "Int32",
               "int64": "Int64", "bool": "Bool", "uint8": "UInt8", "float8e4m3fn": "FP8", "float64": "FP64"}


def tactic_value(key: str) -> str:
    """A stable 16-hex-digit value for a tactic key (TRT prints TacticValue as 0x + 16 hex digits)."""
    if not key:
        return "0x0000000000000000"
    return "0x" + hashlib.sha256(key.encode()).hexdigest()[:16]


def format_datatype(dtype: str | None, layout: str | None = None) -> str:
    """TRT-style `Format/Datatype` text, e.g. `Row major linear FP32`."""
    if not dtype:
        return "N/A"
    name = DTYPE_NAMES.get(dtype, dtype)
    if layout in ("channels_last", "nhwc"):
        return f"Channel last {name} format"
    return f"Row major linear {name}"


def _tensor(name: str, shapes: api.TensorShapes, layer) -> dict:
    """One Inputs/Outputs entry."""
    dims, dtype = shapes.lookup(name, layer)
    return {"Name": name, "Location": "Device",
            "Dimensions": list(dims) if dims is not None else "N/A",
            "Format/Datatype": format_datatype(dtype, (layer.attrs or {}).get("layout"))}


def conv_params(layer, shapes: api.TensorShapes) -> dict:
    """ParameterType and parameters for convolution layers, from the attributes and the weight shape."""
    attrs = layer.attrs or {}
    if str(layer.type) in ("MaxPool", "AveragePool"):
        return pool_params(layer)
    if "Conv" not in str(layer.type):
        return {}
    wdims = shapes.lookup(layer.inputs[1], layer)[0] if len(layer.inputs) > 1 and layer.inputs[1] else None
    nd = len(wdims) - 2 if wdims else len(attrs.get("kernel_shape", ())) or 2
    pads = list(attrs.get("pads", [0] * 2 * nd))
    out: dict = {"ParameterType": "Convolution",
                 "Kernel": list(attrs.get("kernel_shape", wdims[2:] if wdims else [])),
                 "PaddingMode": "kEXPLICIT_ROUND_DOWN", "PrePadding": pads[:nd], "PostPadding": pads[nd:],
                 "Stride": list(attrs.get("strides", [1] * nd)), "Dilation": list(attrs.get("dilations", [1] * nd)),
                 "OutMaps": wdims[0] if wdims else attrs.get("out_channels"), "Groups": attrs.get("group", 1)}
    if wdims:
        out["Weights"] = {"Type": format_datatype(layer.precision).split()[-1], "Count": _count(wdims)}
    has_bias = len(layer.inputs) > 2 and bool(layer.inputs[2])
    if has_bias:
        bdims = shapes.lookup(layer.inputs[2], layer)[0]
        out["Bias"] = {"Type": format_datatype(layer.precision).split()[-1], "Count": _count(bdims or ())}
    acts = _epilogue_ops(attrs)
    out.update(HasBias=int(has_bias), HasReLU=int("RELU" in acts), Activation="+".join(acts) or "NONE")
    return out


def pool_params(layer) -> dict:
    """ParameterType Pooling with window, stride and padding."""
    attrs = layer.attrs or {}
    k = list(attrs.get("kernel_shape", []))
    pads = list(attrs.get("pads", [0] * 2 * len(k)))
    return {"ParameterType": "Pooling", "PoolingType": "MAX" if layer.type == "MaxPool" else "AVERAGE",
            "WindowSize": k, "PaddingMode": "kEXPLICIT_ROUND_DOWN", "PrePadding": pads[:len(k)],
            "PostPadding": pads[len(k):], "Stride": list(attrs.get("strides", [1] * len(k)))}


def _epilogue_ops(attrs: dict) -> list[str]:
    """Upper-case op names of a fused epilogue (attrs['epilogue']['nodes']) or attrs['activation']."""
    if attrs.get("activation"):
        return [str(attrs["activation"]).upper()]
    nodes = (attrs.get("epilogue") or {}).get("nodes", []) if isinstance(attrs.get("epilogue"), dict) else []
    return [str(n.get("op")).upper() for n in nodes if isinstance(n, dict) and n.get("op") not in (None, "input")]


def _count(dims) -> int:
    """Number of elements of a shape."""
    n = 1
    for d in dims:
        n *= max(int(d), 0)
    return n


def detailed_layer(layer, shapes: api.TensorShapes) -> dict:
    """The detailed JSON object of one layer."""
    attrs = layer.attrs or {}
    d = {"Name": layer.name, "LayerType": layer.type,
         "Inputs": [_tensor(n, shapes, layer) for n in layer.inputs],
         "Outputs": [_tensor(n, shapes, layer) for n in layer.outputs]}
    d.update(conv_params(layer, shapes))
    d.update({"TacticName": layer.tactic or "", "TacticValue": tactic_value(layer.tactic or ""),
              "StreamId": int(attrs.get("stream", attrs.get("stream_id", 0)) or 0),
              "Metadata": "\x1e".join(f"[ONNX Layer: {o}]" for o in (layer.origin or []))})
    return d


def layer_info(engine, ctx, verbosity: str) -> dict:
    """The layer information dict for the given profiling verbosity."""
    bindings = [t.name for t in api.io_tensors(engine)]
    if verbosity == "none":
        return {"Layers": [], "Bindings": bindings}
    if verbosity != "detailed":
        return {"Layers": [layer.name for layer in engine.layers], "Bindings": bindings}
    shapes = api.TensorShapes(engine, ctx)
    eager = engine.plan.meta.get("eager_layers", {})
    layers = [detailed_layer(layer, shapes) for layer in engine.layers]
    for d in layers:  # control flow: run eagerly, outside the CUDA graph (host syncs)
        if d["Name"] in eager:
            d["ExecutionMode"] = f"eager: {eager[d['Name']]}"
    return {"Layers": layers, "Bindings": bindings}


def to_json(info: dict) -> str:
    """The --exportLayerInfo file text (lists of numbers kept on one line)."""
    text = json.dumps(info, indent=2)
    return _NUM_LIST.sub(lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text) + "\n"


def _oneline_tensor(t: dict) -> str:
    """`{ Name: x, Location: Device, Dimensions: [1,3], Format/Datatype: ... }`."""
    dims = t["Dimensions"]
    dims = "[" + ",".join(str(d) for d in dims) + "]" if isinstance(dims, list) else dims
    return (f"{{ Name: {t['Name']}, Location: {t['Location']}, Dimensions: {dims}, "
            f"Format/Datatype: {t['Format/Datatype']} }}")


def oneline(info: dict) -> list[str]:
    """The --dumpLayerInfo lines (kONELINE form)."""
    lines = ["Layers:"]
    for layer in info["Layers"]:
        if isinstance(layer, str):
            lines.append(layer)
            continue
        parts = []
        for k, v in layer.items():
            if k in ("Inputs", "Outputs"):
                v = "[ " + ", ".join(_oneline_tensor(t) for t in v) + " ]"
            elif isinstance(v, list):
                v = "[" + ",".join(str(x) for x in v) + "]"
            parts.append(f"{k}: {v}")
        lines.append(", ".join(parts).replace("\x1e", "\\x1E"))
    lines.append("")
    lines.append("Bindings:")
    lines += info["Bindings"]
    return lines
