"""The engine plan: tensors and layers as plain data (what the engine file's header holds)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class TensorSpec:
    """One tensor of the engine. kind: input|output|activation|weight|shape."""
    name: str
    dtype: str
    shape: list  # ints and dim-expression strings
    kind: str = "activation"
    sym: list | None = None  # kind == "shape": flat contents as ints / expression strings
    host: bool = False  # weight kept in host memory (read on the host, e.g. a Reshape target)
    dynamic: bool = False  # shape known only at run time (data-dependent): not in the arena


@dataclass
class LayerSpec:
    """One executable layer. mode: kernel (writes its outputs) | view (aliases input 0) | copy."""
    name: str
    type: str
    inputs: list  # tensor names or None
    outputs: list
    tactic: dict = field(default_factory=lambda: {"source": "aten", "name": "reference", "params": {}})
    attrs: dict = field(default_factory=dict)
    domain: str = ""
    origin: list = field(default_factory=list)
    mode: str = "kernel"
    host_inputs: list = field(default_factory=list)
    precision: str = "float32"
    stream: int = 0


@dataclass
class ProfileSpec:
    """Per-input (min, opt, max) shapes of one optimization profile."""
    shapes: dict = field(default_factory=dict)  # name -> [min, opt, max] lists
    values: dict = field(default_factory=dict)  # shape-tensor input -> [min, opt, max] value lists


@dataclass
class EnginePlan:
    """Everything the runtime needs, except weight data and compiled artifacts."""
    tensors: dict  # name -> TensorSpec
    layers: list  # LayerSpec in execution order
    inputs: list  # input names in order
    outputs: list  # output names in order
    opset: int = 17
    profiles: list = field(default_factory=list)  # ProfileSpec
    config: dict = field(default_factory=dict)
    device_memory_size: int = 0
    num_aux_streams: int = 0
    meta: dict = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"tensors": [asdict(t) for t in self.tensors.values()],
                "layers": [asdict(lay) for lay in self.layers],
                "inputs": self.inputs, "outputs": self.outputs, "opset": self.opset,
                "profiles": [asdict(p) for p in self.profiles], "config": self.config,
                "device_memory_size": self.device_memory_size,
                "num_aux_streams": self.num_aux_streams, "meta": self.meta}

    @classmethod
    def from_json(cls, d: dict) -> "EnginePlan":
        tensors = {t["name"]: TensorSpec(**t) for t in d["tensors"]}
        return cls(tensors=tensors, layers=[LayerSpec(**x) for x in d["layers"]], inputs=d["inputs"],
                   outputs=d["outputs"], opset=d["opset"],
                   profiles=[ProfileSpec(**p) for p in d["profiles"]], config=d["config"],
                   device_memory_size=d["device_memory_size"],
                   num_aux_streams=d.get("num_aux_streams", 0), meta=d.get("meta", {}))
