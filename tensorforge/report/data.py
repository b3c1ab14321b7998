"""The report's data: one row per layer plus build and run facts, from forgeexec's JSON exports
(--exportProfile, --exportLayerInfo, --exportTimes) or from a profiled engine (profile_engine.py)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..errors import TensorforgeError
from . import cost

PRECISION_NAMES = {"float32": "FP32", "float16": "FP16", "bfloat16": "BF16", "int8": "Int8",
                   "float8e4m3fn": "FP8", "int32": "Int32", "int64": "Int64", "bool": "Bool"}


@dataclass
class LayerRow:
    """One layer: identity, the tactic that runs it, its median time per inference and its floor."""

    name: str
    type: str = "n/a"
    tactic: str = "n/a"
    precision: str = "n/a"
    stream: int = 0
    time_ms: float = 0.0
    flops: int = 0
    bytes: int = 0
    fused: int = 1  # ONNX nodes this layer runs
    start_ms: float | None = None  # measured start/end in one inference, when the profile has them
    end_ms: float | None = None


@dataclass
class ReportData:
    """Everything the page shows."""

    title: str
    device: str = "n/a"
    layers: list = field(default_factory=list)
    iterations: int = 0
    build: dict = field(default_factory=dict)
    run: dict = field(default_factory=dict)  # from --exportTimes: queries, mean latency, throughput
    tf32: bool = True
    notes: list = field(default_factory=list)

    @property
    def total_ms(self) -> float:
        """Sum of the layers' times (one inference)."""
        return sum(r.time_ms for r in self.layers)

    @property
    def has_times(self) -> bool:
        """True when the layers' start/end times were measured (else the timeline is laid out)."""
        return bool(self.layers) and all(r.start_ms is not None for r in self.layers)


MAX_JSON = 1 << 30  # forgeexec's exports of a long profile run stay far below this


def read_json(path: str):
    """A JSON file (a regular file of at most 1 GiB: never a FIFO or a device), or a one-line error."""
    from ..fileio import regular_file
    if regular_file(path, "JSON file").st_size > MAX_JSON:
        raise TensorforgeError(f"{path}: over {MAX_JSON >> 30} GiB, not one of forgeexec's JSON exports")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        raise TensorforgeError(f"cannot read {path}: {e.strerror}") from None
    except ValueError as e:
        raise TensorforgeError(f"{path} is not valid JSON ({e})") from None


def precision_of(layer: dict) -> str:
    """A layer's precision from its engine precision or its first output's datatype."""
    if layer.get("precision"):
        return PRECISION_NAMES.get(layer["precision"], layer["precision"])
    outs = layer.get("Outputs") or []
    return (cost.dtype_of(outs[0]) or "n/a") if outs else "n/a"


def row_of(layer) -> LayerRow:
    """A LayerRow from a layer-info entry (a name, or a detailed dict)."""
    if isinstance(layer, str):
        return LayerRow(layer)
    meta = str(layer.get("Metadata", ""))
    return LayerRow(name=layer.get("Name", "?"), type=str(layer.get("LayerType", "n/a")),
                    tactic=layer.get("TacticName") or "n/a", precision=precision_of(layer),
                    stream=int(layer.get("StreamId", 0) or 0), flops=cost.layer_flops(layer),
                    bytes=cost.layer_bytes(layer), fused=max(1, meta.count("[ONNX Layer:")))


def apply_profile(data: ReportData, profile: list) -> None:
    """Per-layer times from an --exportProfile list: [{"count": N}, {"name", "averageMs", ...}, ...]."""
    if not isinstance(profile, list) or not profile or not isinstance(profile[0], dict):
        raise TensorforgeError("the profile is not forgeexec's --exportProfile format")
    data.iterations = int(profile[0].get("count", 0))
    rows = {r.name: r for r in data.layers}
    for entry in profile[1:]:
        name = entry.get("name")
        row = rows.get(name)
        if row is None:
            row = LayerRow(name)
            data.layers.append(row)
            rows[name] = row
        row.time_ms = float(entry.get("averageMs", entry.get("medianMs", 0.0)))
        if "startMs" in entry and "endMs" in entry:
            row.start_ms, row.end_ms = float(entry["startMs"]), float(entry["endMs"])


def run_summary(times: list) -> dict:
    """Queries, mean latency / compute and throughput from an --exportTimes list."""
    if not isinstance(times, list) or not times:
        return {}
    comp = [float(t.get("computeMs", 0.0)) for t in times]
    lat = [float(t.get("latencyMs", 0.0)) for t in times]
    span = float(times[-1].get("endD2hMs", 0.0)) - float(times[0].get("startH2dMs", 0.0))
    out = {"queries": len(times), "mean_compute_ms": sum(comp) / len(comp), "mean_latency_ms": sum(lat) / len(lat)}
    if span > 0:
        out["throughput_qps"] = len(times) / span * 1000.0
    return out


def from_exports(profile: str | None, layer_info: str | None, times: str | None, title: str,
                 device: str = "n/a") -> ReportData:
    """ReportData from forgeexec's JSON exports (at least --exportProfile or --exportLayerInfo)."""
    if not profile and not layer_info:
        raise TensorforgeError("a report needs an engine, or --profile and/or --layer-info JSON files")
    data = ReportData(title=title, device=device)
    if layer_info:
        info = read_json(layer_info)
        if not isinstance(info, dict) or "Layers" not in info:
            raise TensorforgeError(f"{layer_info} is not forgeexec's --exportLayerInfo format")
        data.layers = [row_of(x) for x in info["Layers"]]
        if info["Layers"] and isinstance(info["Layers"][0], str):
            data.notes.append("The layer information has names only (export it with --profilingVerbosity=detailed "
                              "for types, tactics, precisions and floors).")
    else:
        data.notes.append("No layer information given: types, tactics and floors are unknown.")
    if profile:
        apply_profile(data, read_json(profile))
    else:
        data.notes.append("No profile given: layer times are unknown.")
    if times:
        data.run = run_summary(read_json(times))
    data.build = {"layers": len(data.layers), "fused layers": sum(1 for r in data.layers if r.fused > 1),
                  "ONNX nodes in layers": sum(r.fused for r in data.layers)}
    data.notes.append("FP32 layers are measured against the TF32 peak (tensorforge's default).")
    return data
