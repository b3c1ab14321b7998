"""Refit: recompute an engine's weights from new ONNX initializers. A refittable build records the
torch calls it makes on the initializers (frontend folding, BN folding, GEMM merges, patchify,
precision casts, lowering: ir.tape) and a refit replays only those on the new arrays, re-checking
every value the build decided on, so refitted weights are bitwise those of a fresh build. Engines
whose build made a call the tape cannot store keep the ONNX graph without its weight data and
refit by re-running the frontend and passes (slower, same result)."""
from __future__ import annotations

import base64
import logging
import time
import warnings

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from .. import frontend, passes
from ..frontend.onnx_loader import tensor_to_torch
from ..ir import tape
from ..errors import TensorforgeError
from .config import BuilderConfig
from .lower import lower
from .precision import assign_precision

log = logging.getLogger("tensorforge")
_FLOAT = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.DOUBLE}


class RefitError(TensorforgeError):
    """A refit that cannot give the engine a fresh build's weights."""


def refittable(t: onnx.TensorProto) -> bool:
    """Float initializers with more than one element; scalars (eps, exponents) shape the fusions."""
    n = 1
    for d in t.dims:
        n *= d
    return t.data_type in _FLOAT and n > 1


def recording(proto: onnx.ModelProto):
    """Context of a refittable build: records the torch calls on its refittable initializers."""
    return tape.recording({t.name for t in proto.graph.initializer if refittable(t)})


def record(proto: onnx.ModelProto, stripped: bool, retarget: dict | None = None, rec=None,
           weights: dict | None = None) -> dict:
    """The refit record stored in plan.meta: the specs of the refittable weights and the weight tape
    (or, when the tape could not be stored, the graph with refittable data removed)."""
    specs = {t.name: [int(t.data_type), list(t.dims)] for t in proto.graph.initializer if refittable(t)}
    if rec is not None and rec.error is None:
        return {"tape": tape.finish(rec, weights, stripped), "weights": specs, "stripped": stripped}
    if rec is not None:
        log.info("refit: the build's weight transforms cannot be replayed (%s); a refit re-runs the passes",
                 rec.error)
    skel = onnx.ModelProto()
    skel.CopyFrom(proto)
    specs = {}
    for t in skel.graph.initializer:
        if refittable(t):
            specs[t.name] = [int(t.data_type), list(t.dims)]
            t.ClearField("raw_data")
            for f in ("float_data", "double_data", "int32_data"):
                t.ClearField(f)
            t.data_location = onnx.TensorProto.DEFAULT
            del t.external_data[:]
    return {"onnx": base64.b64encode(skel.SerializeToString()).decode(), "weights": specs, "stripped": stripped,
            "retarget": dict(retarget or {})}


def refit_info(plan) -> dict:
    """The plan's refit record; RefitError if the engine was built without --refit/--stripWeights."""
    info = plan.meta.get("refit")
    if not info:
        raise RefitError("engine is not refittable (build it with BuilderConfig(refit=True) / --refit, "
                         "or --stripWeights)")
    return info


def model_weights(model) -> dict:
    """{initializer name: numpy array} of the refittable initializers of an ONNX model."""
    proto = frontend.load_model_proto(model)
    return {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer if refittable(t)}


def _check_names(specs: dict, arrays: dict) -> None:
    """Every refittable weight given, no other name, each of the shape the engine was built with."""
    unknown = sorted(set(arrays) - set(specs))
    if unknown:
        raise RefitError(f"not refittable weight(s) of this engine: {', '.join(unknown[:8])}")
    missing = sorted(set(specs) - set(arrays))
    if missing:
        raise RefitError(f"{len(missing)} weight(s) missing for refit: {', '.join(missing[:8])}")
    for name, (_, dims) in specs.items():
        if list(arrays[name].shape) != dims:
            raise RefitError(f"weight '{name}' has shape {list(arrays[name].shape)}; the engine was built with {dims}")


def _source(a, dt: int, name: str) -> torch.Tensor:
    """The tensor the frontend makes of initializer `name` holding array a (its bits exactly)."""
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu()
        if a.dtype == torch.bfloat16:
            a = a.float()
        a = a.numpy()
    np_dt = onnx.helper.tensor_dtype_to_np_dtype(dt)
    if dt == onnx.TensorProto.BFLOAT16:  # numpy_helper's bit conventions, as the frontend reads it
        return tensor_to_torch(numpy_helper.from_array(np.asarray(a).astype(np_dt, copy=False), name))
    arr = np.ascontiguousarray(a, dtype=np_dt.newbyteorder("="))
    if arr.flags.writeable:
        return torch.from_numpy(arr)
    with warnings.catch_warnings():  # read-only is fine: a replay copies any source it writes into
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(arr)


def _fill(info: dict, arrays: dict) -> onnx.ModelProto:
    """The stored graph with every refittable initializer filled from arrays (checked by spec)."""
    proto = onnx.ModelProto()
    proto.ParseFromString(base64.b64decode(info["onnx"]))
    specs = info["weights"]
    for i, t in enumerate(proto.graph.initializer):
        if t.name not in specs:
            continue
        a = arrays[t.name]
        a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a
        dt, dims = specs[t.name]
        np_dt = onnx.helper.tensor_dtype_to_np_dtype(dt)
        if np_dt.itemsize != 2:  # float16/bfloat16 go through numpy_helper (its bit conventions)
            t.raw_data = np.ascontiguousarray(a, dtype=np_dt).astype(np_dt.newbyteorder("<"), copy=False).tobytes()
        else:
            proto.graph.initializer[i].CopyFrom(numpy_helper.from_array(a.astype(np_dt, copy=False), t.name))
    return proto


def replay(plan, arrays: dict, copy: bool = False, into: dict | None = None) -> dict:
    """Engine weights recomputed from arrays; RefitError naming weights whose shape or role changed.
    copy=True: no result shares memory with the given arrays (they become the engine's own).
    into {engine weight: tensor}: the engine's tensors, which the replay may write in place."""
    info = refit_info(plan)
    _check_names(info["weights"], arrays)
    if "tape" in info:
        sources = {k: _source(arrays[k], dt, k) for k, (dt, _) in info["weights"].items()}
        if copy:
            sources = {k: t.clone() for k, t in sources.items()}
        try:
            fit = {k: t for k, t in (into or {}).items() if k in plan.tensors
                   and list(t.shape) == list(plan.tensors[k].shape)
                   and str(t.dtype).replace("torch.", "") == _torch_name(plan.tensors[k].dtype)}
            weights = tape.replay(info["tape"], sources, fit)
        except TensorforgeError as e:  # GuardError: a decision changed
            raise RefitError(str(e)) from None
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as e:  # a damaged file's tape
            raise RefitError(f"the engine's weight tape cannot be replayed ({type(e).__name__}: "
                             f"{str(e).splitlines()[0][:200] if str(e) else ''}); rebuild the engine") from None
        return _checked(plan, weights, set(weights))
    return _replay_full(plan, info, arrays)


def _replay_full(plan, info: dict, arrays: dict) -> dict:
    """Engine weights by re-running the frontend, passes and lowering on the filled ONNX graph."""
    proto = _fill(info, arrays)
    cfg = BuilderConfig(**{k: v for k, v in plan.config.items() if k in BuilderConfig.__dataclass_fields__
                           and k != "profiles"})
    g = frontend.load(proto)
    for n in g.nodes:  # nodes the build ran as plugins (plugin.override)
        if n.name in info.get("retarget", {}):
            n.op, n.domain = info["retarget"][n.name]
    g = passes.run_pipeline(g, None if cfg.fusion else passes.CLEANUP)
    g = assign_precision(g, cfg)
    new_plan, weights = lower(g)
    old_layers = [(lay.name, lay.type) for lay in plan.layers]
    new_layers = [(lay.name, lay.type) for lay in new_plan.layers]
    if old_layers != new_layers:
        diff = [f"{a[0]}" for a, b in zip(old_layers, new_layers) if a != b] or ["(layer count)"]
        raise RefitError(f"the new weights change the engine's layers (first: {diff[0]}); values that decide "
                         "fusions (e.g. zero biases, identity scales) differ; rebuild instead")
    return _checked(plan, weights, {n for n, t in plan.tensors.items() if t.kind == "weight"})


def _checked(plan, weights: dict, names: set) -> dict:
    """weights, refused naming those whose shape or dtype differs from the engine's (or that it lacks)."""
    out, bad = {}, []
    for name in sorted(names):
        t = plan.tensors.get(name)
        w = weights.get(name)
        if t is None or t.kind != "weight":
            bad.append(name)
            continue
        if w is None or str(w.dtype).replace("torch.", "") != _torch_name(t.dtype) or \
                (all(isinstance(d, int) for d in t.shape) and list(w.shape) != list(t.shape)):
            bad.append(name)
        else:
            out[name] = w
    if bad:
        raise RefitError(f"engine weight(s) change shape or role with the new weights: {', '.join(bad[:8])}")
    return out


def _torch_name(dtype: str) -> str:
    from ..dtypes import to_torch
    return str(to_torch(dtype)).replace("torch.", "")


class Refitter:
    """TensorRT's Refitter shape: set weights by ONNX initializer name, then refit the engine in place."""

    def __init__(self, engine, logger=None):
        self.engine = engine
        self.info = refit_info(engine.plan)
        self.pending: dict = {}

    def get_all(self) -> list[str]:
        """Names of every refittable weight (ONNX initializer names)."""
        return sorted(self.info["weights"])

    get_all_weights = get_all

    def get_missing(self) -> list[str]:
        """Refittable weights not set yet (all must be set: transforms mix them, e.g. conv + BN)."""
        return sorted(set(self.info["weights"]) - set(self.pending))

    get_missing_weights = get_missing

    def set_named_weights(self, name: str, array) -> bool:
        """Stage one weight; RefitError if the name is not refittable or its shape differs."""
        spec = self.info["weights"].get(name)
        if spec is None:
            raise RefitError(f"'{name}' is not a refittable weight of this engine")
        if list(array.shape) != spec[1]:
            raise RefitError(f"weight '{name}' has shape {list(array.shape)}; the engine was built with {spec[1]}")
        self.pending[name] = array
        return True

    def set_weights_from(self, model) -> None:
        """Stage every refittable weight from an ONNX model (path, zoo:NAME or ModelProto)."""
        self.pending.update(model_weights(model))  # names the engine lacks are refused at refit()

    def refit(self) -> bool:
        """Recompute and install the engine's weights (in place: live contexts and graphs see them)."""
        t0 = time.perf_counter()
        new = replay(self.engine.plan, self.pending, copy=not self.engine.weights, into=self.engine.weights)
        self.engine.set_weights(new)
        log.info("Refitted %d engine weights from %d ONNX weights in %.3f s", len(new), len(self.pending),
                 time.perf_counter() - t0)
        return True

    refit_cuda_engine = refit


def weight_list(plan) -> list[tuple[str, str, list]]:
    """[(ONNX weight name, dtype, shape)] refittable in this plan ([] when not refittable)."""
    info = plan.meta.get("refit") or {}
    return [(k, onnx.TensorProto.DataType.Name(dt).lower(), dims)
            for k, (dt, dims) in sorted(info.get("weights", {}).items())]
