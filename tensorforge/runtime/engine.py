"""Engine: a built, serializable plan plus weights; creates execution contexts."""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

import torch

from ..version import __version__
from ..errors import EngineFormatError, ShapeError
from . import format as fmt
from .plan import EnginePlan
from .schema import check_shapes, check_weights

log = logging.getLogger("tensorforge")


@dataclass(frozen=True)
class TensorDesc:
    """An engine input or output: name, dtype name and shape (-1 for dynamic dims)."""
    name: str
    dtype: str
    shape: tuple
    is_input: bool


@dataclass(frozen=True)
class LayerInfo:
    """One layer as users see it (layer info, profiles, inspect)."""
    name: str
    type: str
    tactic: str
    inputs: list
    outputs: list
    origin: list
    attrs: dict
    precision: str
    stream: int = 0


def device_info(device: torch.device) -> dict:
    """Name, type and compute capability of a device (what the engine file records)."""
    if device.type == "cuda":
        idx = device.index if device.index is not None else torch.cuda.current_device()
        p = torch.cuda.get_device_properties(idx)
        return {"type": "cuda", "name": p.name, "capability": [p.major, p.minor]}
    return {"type": "cpu", "name": "cpu", "capability": None}


def default_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


class Engine:
    """A built engine: plan + weights (+ compiled kernels: cubins only). Immutable once built."""

    def __init__(self, plan: EnginePlan, weights: dict, device=None, artifacts: bytes = b"",
                 build_info: dict | None = None):
        self.plan = plan
        self.device = torch.device(device) if device is not None else default_device()
        self.artifacts = artifacts
        self.build_info = build_info or {}
        self.weights = {}
        for k, w in weights.items():
            spec = plan.tensors.get(k)
            self.weights[k] = w if (spec is not None and spec.host) or self.device.type == "cpu" \
                else w.to(self.device, non_blocking=True)
        self._apply_weight_layouts()
        self.load_time_s = None
        self._size_bytes = None
        self._binaries = self._store = None

    def _apply_weight_layouts(self) -> None:
        """Lay weights out as their tactics want them, once (the file stores them contiguous)."""
        for lay in self.plan.layers:
            if (lay.tactic.get("params") or {}).get("weight_layout") != "channels_last":
                continue
            for name in lay.inputs[1:2]:
                w = self.weights.get(name)
                if w is not None and w.dim() == 4 and not w.is_contiguous(memory_format=torch.channels_last):
                    self.weights[name] = w.contiguous(memory_format=torch.channels_last)

    # ---- serialization -----------------------------------------------------------------
    def _file(self) -> tuple:
        """(header, weights, artifacts) of the engine file."""
        header = {"tensorforge_version": __version__, "torch_version": torch.__version__,
                  "device": device_info(self.device), "build": self.build_info,
                  "plan": self.plan.to_json()}
        return header, {} if self.stripped else self.weights, self.artifacts

    def _parts(self) -> list:
        """The engine file as buffers (format.parts): the weights' own memory, not copies."""
        parts = fmt.parts(*self._file())
        self._size_bytes = sum(len(b) for b in parts)
        return parts

    def serialize(self) -> bytes:
        return b"".join(self._parts())

    def save(self, path: str) -> None:
        fmt.save(str(path), self._parts())  # streamed: no joined copy of a large engine in memory
        log.debug("Engine saved to %s (%.6g MiB)", path, self._size_bytes / 2**20)

    @property
    def stripped(self) -> bool:
        """True for a weight-stripped engine: saved without weights, refit before inference."""
        return bool((self.plan.meta.get("refit") or {}).get("stripped"))

    def set_weights(self, new: dict) -> None:
        """Install refitted weights: copied into the live tensors where they exist (same addresses, so
        contexts and captured graphs see them), else placed on the device; the engine is then whole."""
        for k, w in new.items():
            old = self.weights.get(k)
            if old is w:  # the refit wrote this one in place
                continue
            if old is not None and old.shape == w.shape and old.dtype == w.dtype:
                old.copy_(w)
            else:
                spec = self.plan.tensors.get(k)
                self.weights[k] = w if (spec is not None and spec.host) or self.device.type == "cpu" \
                    else w.to(self.device)
        self._apply_weight_layouts()
        self.plan.meta["refit"]["stripped"] = False
        self._size_bytes = None

    def check_weights_present(self) -> None:
        """Refuse inference on a stripped engine that has not been refitted."""
        if any(t.kind == "weight" and n not in self.weights for n, t in self.plan.tensors.items()):
            raise EngineFormatError("engine was built with stripped weights: refit it before inference "
                                    "(tensorforge.Refitter(engine) or `tensorforge refit ENGINE MODEL.onnx -o OUT`)")

    @classmethod
    def deserialize(cls, data: bytes, device=None, source="<bytes>") -> "Engine":
        t0 = time.perf_counter()
        header, weights, artifacts = fmt.unpack(data, source)
        eng = cls._from_parts(header, weights, artifacts, device, source)
        eng._loaded(len(data), t0)
        return eng

    @classmethod
    def load(cls, path, device=None) -> "Engine":
        t0 = time.perf_counter()
        header, weights, artifacts = fmt.read(str(path))
        eng = cls._from_parts(header, weights, artifacts, device, str(path))
        eng._loaded(os.path.getsize(path), t0)
        return eng

    def _loaded(self, size: int, t0: float) -> None:
        self._size_bytes = size
        self.load_time_s = time.perf_counter() - t0
        log.debug("Loaded engine size: %.6g MiB", size / 2**20)
        log.debug("Engine loaded in %.6g sec", self.load_time_s)

    @classmethod
    def _from_parts(cls, header, weights, artifacts, device, source):
        try:  # the header passed the schema (format.read/unpack): this is a second line of defence
            built = header["device"]
            plan = EnginePlan.from_json(header["plan"])
        except (KeyError, TypeError, ValueError) as e:
            raise EngineFormatError(f"{source}: engine header is incomplete ({e})") from None
        if weights or not (plan.meta.get("refit") or {}).get("stripped"):
            check_weights(plan, weights, source)
        check_shapes(plan, source)
        from ..kernels.registry import check_plugins
        check_plugins(plan, source)
        dev = torch.device(device) if device is not None else (
            torch.device("cuda") if built["type"] == "cuda" else torch.device("cpu"))
        check_device(built, dev, source)
        eng = cls(plan, weights, dev, artifacts, header.get("build", {}))
        eng.binaries(source)  # device code only (cubins + launch metadata), checked on every device
        return eng

    def binaries(self, source: str = "<engine>") -> dict:
        """{(kernel, specialization): cubin.Binary} stored in the engine (validated once)."""
        if self._binaries is None or self._binaries[0] is not self.artifacts:
            from ..kernels import cubin
            self._binaries = (self.artifacts, cubin.unpack(self.artifacts, source))
        return self._binaries[1]

    @property
    def kernel_store(self):
        """The engine's cubins, loaded per device by the CUDA driver at their first launch (CUDA only)."""
        if self._store is None or self._store.binaries is not self.binaries():
            from ..kernels.driver import Store
            self._store = Store(self.binaries())
        return self._store

    # ---- introspection ------------------------------------------------------------------
    @property
    def inputs(self) -> list[TensorDesc]:
        return [self._desc(n, True) for n in self.plan.inputs]

    @property
    def outputs(self) -> list[TensorDesc]:
        return [self._desc(n, False) for n in self.plan.outputs]

    def _desc(self, name, is_input):
        t = self.plan.tensors[name]
        return TensorDesc(name, t.dtype, tuple(d if isinstance(d, int) else -1 for d in t.shape), is_input)

    @property
    def layers(self) -> list[LayerInfo]:
        from ..kernels import tactic_key
        return [LayerInfo(lay.name, lay.type, tactic_key(lay.tactic), list(lay.inputs), list(lay.outputs),
                          list(lay.origin), dict(lay.attrs), lay.precision, lay.stream)
                for lay in self.plan.layers]

    @property
    def device_memory_size(self) -> int:
        return self.plan.device_memory_size

    @property
    def size_bytes(self) -> int:
        if self._size_bytes is None:
            self._size_bytes = fmt.size(*self._file())  # from shapes: no weight is read or copied
        return self._size_bytes

    @property
    def num_profiles(self) -> int:
        return len(self.plan.profiles)

    @property
    def num_aux_streams(self) -> int:
        return self.plan.num_aux_streams

    def get_profile_shape(self, profile: int, name: str):
        p = self.plan.profiles[profile].shapes
        if name not in p:
            shp = self._desc(name, True).shape
            return shp, shp, shp
        return tuple(tuple(s) for s in p[name])

    def get_tensor_profile_values(self, profile: int, name: str):
        """(min, opt, max) values of a shape-tensor input in a profile."""
        from .binding import profile_values
        if not self.is_shape_inference_io(name):
            raise ShapeError(f"'{name}' is not a shape tensor input of this engine")
        vals = profile_values(self.plan, profile, name)
        if vals is None:
            raise ShapeError(f"profile {profile} has no values for shape tensor input '{name}'")
        return vals

    def is_shape_inference_io(self, name: str) -> bool:
        """True for shape-tensor inputs: their values (given in host memory) set shapes."""
        t = self.plan.tensors.get(name)
        return t is not None and name in self.plan.inputs and t.sym is not None

    def create_execution_context(self, device_memory=None, **kw):
        """A new context; several share this engine's weights. device_memory: a uint8 tensor of at
        least device_memory_size bytes to use as the activation arena (e.g. shared by contexts that
        run one after the other), else the context allocates its own."""
        from .context import ExecutionContext
        self.check_weights_present()
        return ExecutionContext(self, device_memory=device_memory, **kw)

    def create_execution_context_without_device_memory(self, **kw):
        """A context without an arena: call ctx.set_device_memory(tensor) before executing."""
        from .context import ExecutionContext
        self.check_weights_present()
        return ExecutionContext(self, allocate_memory=False, **kw)


def check_device(built: dict, dev: torch.device, source: str) -> None:
    """An engine runs only on the device type and GPU architecture it was built for."""
    if built["type"] == "cpu":
        if dev.type != "cpu":
            raise EngineFormatError(f"{source}: engine was built for the CPU; rebuild it on the GPU")
        return
    cap = built.get("capability")
    if dev.type != "cuda" or not torch.cuda.is_available():
        raise EngineFormatError(f"{source}: engine was built for {built['name']} (sm_{cap[0]}{cap[1]}); "
                                "no CUDA device is available here")
    cur = device_info(dev)
    if list(cur["capability"]) != list(cap):
        raise EngineFormatError(f"{source}: engine was built for {built['name']} (sm_{cap[0]}{cap[1]}) "
                                f"but this GPU is {cur['name']} (sm_{cur['capability'][0]}"
                                f"{cur['capability'][1]}); rebuild the engine")
