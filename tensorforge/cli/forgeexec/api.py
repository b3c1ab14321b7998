"""Thin adapter over the tensorforge library: every library call forgeexec makes goes through here."""
from __future__ import annotations

import dataclasses
import os
import tempfile


def lib():
    """The tensorforge package (imported lazily so that option parsing works without it)."""
    import tensorforge
    return tensorforge


def error_types() -> tuple:
    """Exception types printed as one [E] line."""
    from tensorforge.errors import TensorforgeError
    return (TensorforgeError,)


def error(msg: str) -> Exception:
    """A TensorforgeError with msg."""
    from tensorforge.errors import TensorforgeError
    return TensorforgeError(msg)


def nvtx_available() -> bool:
    """Whether NVTX ranges can be emitted here (a CUDA build of torch or the `nvtx` package)."""
    from tensorforge.runtime.nvtx import api as nvtx_api
    return nvtx_api() is not None


def make_config(fields: dict):
    """A BuilderConfig from fields; returns (config, names of fields the library does not know)."""
    cls = lib().BuilderConfig
    known = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set(fields)
    cfg = cls(**{k: v for k, v in fields.items() if k in known})
    return cfg, sorted(set(fields) - known)


def config_default(name: str):
    """BuilderConfig's default for field `name` (flags take the library's defaults, not their own)."""
    from tensorforge.builder.config import BuilderConfig  # the dataclass only: no builder, no torch
    return {f.name: f.default for f in dataclasses.fields(BuilderConfig)}[name]


def make_profile(shapes: dict, shape_inputs=()):
    """An OptimizationProfile from {name: (min, opt, max)} (values for the names in shape_inputs)."""
    prof = lib().OptimizationProfile()
    for name, (mn, op, mx) in shapes.items():
        (prof.set_shape_input if name in shape_inputs else prof.set_shape)(name, mn, op, mx)
    return prof


def shape_tensor_inputs(proto) -> list[str]:
    """Graph inputs of an ONNX model that are shape tensors (their values set shapes)."""
    from tensorforge.frontend.shape_tensors import shape_tensor_inputs as find
    return find(proto)


def is_shape_input(engine, name: str) -> bool:
    """True for an engine's shape-tensor inputs."""
    fn = getattr(engine, "is_shape_inference_io", None)
    return bool(fn and fn(name))


def profile_values(engine, index: int, name: str) -> tuple:
    """(min, opt, max) values of a shape-tensor input in profile index."""
    return tuple(tuple(int(x) for x in v) for v in engine.get_tensor_profile_values(index, name))


def check_shape_values(engine, index: int, values: dict) -> None:
    """Raise a one-line error when shape-tensor values are not positive or outside profile index."""
    from tensorforge.runtime.binding import check_values
    check_values(engine.plan, index, values)


def load_model(ref: str):
    """Resolve a path or zoo:NAME to an onnx.ModelProto."""
    from tensorforge.frontend import load_model_proto
    if not ref.startswith("zoo:") and not os.path.exists(os.path.expanduser(ref)):
        raise error(f"Cannot find ONNX file: {ref}")
    return load_model_proto(ref if ref.startswith("zoo:") else os.path.expanduser(ref))


def model_inputs(proto) -> list[tuple[str, str, tuple]]:
    """The graph inputs of an ONNX model that are not initializers: (name, dtype, shape with -1)."""
    from tensorforge import dtypes
    inits = {i.name for i in proto.graph.initializer}
    out = []
    for vi in proto.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim)
        out.append((vi.name, dtypes.from_onnx(tt.elem_type), dims))
    return out


def build(cfg, model):
    """Build an engine."""
    return lib().Builder(cfg).build(model)


def load_engine(path: str, device=None):
    """Load an engine file."""
    if not os.path.isfile(path):
        raise error(f"Error opening engine file: {path}")
    return lib().Engine.load(path, device=device) if device is not None else lib().Engine.load(path)


def save_engine(engine, path: str) -> None:
    """Save an engine file."""
    try:
        engine.save(path)
    except OSError as e:
        raise error(f"Cannot save engine to {path}: {e.strerror or e}") from None


def engine_size(engine) -> int:
    """Serialized size of the engine in bytes."""
    size = getattr(engine, "size_bytes", None)
    if size is not None:
        return int(size)
    with tempfile.TemporaryDirectory() as d:
        engine.save(os.path.join(d, "e.engine"))
        return os.path.getsize(os.path.join(d, "e.engine"))


def engine_verbosity(engine, default: str) -> str:
    """The profiling verbosity the engine was built with (falls back to default)."""
    plan = getattr(engine, "plan", None)
    cfg = getattr(plan, "config", None)
    if isinstance(cfg, dict) and cfg.get("profiling_verbosity"):
        return cfg["profiling_verbosity"]
    return default


def io_tensors(engine) -> list:
    """Inputs then outputs (TensorDesc)."""
    return list(engine.inputs) + list(engine.outputs)


def num_profiles(engine) -> int:
    """Number of optimization profiles (at least 1)."""
    return max(1, int(getattr(engine, "num_profiles", 1) or 1))


def profile_shape(engine, index: int, name: str):
    """(min, opt, max) of an input in profile index."""
    if not getattr(engine, "num_profiles", 0):
        shape = next(t.shape for t in engine.inputs if t.name == name)
        return shape, shape, shape
    return tuple(tuple(s) for s in engine.get_profile_shape(index, name))


def zoo_value_ranges(model_ref: str | None) -> dict:
    """{input: (lo, hi)} from tensorforge.zoo.input_specs when the model is zoo:NAME, else {}."""
    if not model_ref or not model_ref.startswith("zoo:"):
        return {}
    try:
        from tensorforge import zoo
        specs = zoo.input_specs(model_ref[4:])
    except Exception:  # the zoo may not know the name or may not exist yet; fall back to defaults
        return {}
    return {name: tuple(spec[2]) for name, spec in specs.items() if len(spec) > 2 and spec[2] is not None}


def set_profiler(ctx, profiler) -> None:
    """Attach (or detach with None) a per-layer profiler."""
    ctx.profiler = profiler


def execute(ctx, stream) -> None:
    """Enqueue one inference on stream (None on the CPU)."""
    ok = ctx.execute_async(stream) if stream is not None else ctx.execute_async()
    if ok is False:
        raise error("Inference enqueue failed.")


def torch_dtype(name: str) -> "torch.dtype":  # noqa: F821 - torch is not imported here (help < 1 s)
    """torch dtype of a tensorforge dtype name."""
    from tensorforge import dtypes
    return dtypes.to_torch(name)


class TensorShapes:
    """Shapes and dtypes of any engine tensor (I/O or internal) for the detailed layer information."""

    def __init__(self, engine, ctx):
        self.engine, self.ctx = engine, ctx
        self.io = {t.name: t for t in io_tensors(engine)}
        self.tensors = getattr(getattr(engine, "plan", None), "tensors", {}) or {}

    def lookup(self, name: str, layer) -> tuple:
        """(dims or None, dtype or None) of tensor name."""
        dtype = self.io[name].dtype if name in self.io else getattr(self.tensors.get(name), "dtype", None)
        dims = None
        if self.ctx is not None:
            try:
                dims = tuple(int(d) for d in self.ctx.get_tensor_shape(name))
            except Exception:  # not every tensor is resolvable (data-dependent shapes); report N/A
                dims = None
        if dims is None and name in self.io:
            dims = tuple(self.io[name].shape)
        elif dims is None and name in self.tensors:
            shape = getattr(self.tensors[name], "shape", None)
            dims = tuple(d if isinstance(d, int) else -1 for d in shape) if shape is not None else None
        return dims, dtype or getattr(layer, "precision", None)


def refittable_weights(engine) -> list[tuple[str, str, list]]:
    """[(ONNX weight name, dtype, shape)] an engine can be refitted with; [] if it is not refittable."""
    from tensorforge.builder.refit import weight_list
    return weight_list(engine.plan)


def load_plugin(path: str) -> None:
    """Import a user's plugin module (tensorforge.plugin.load)."""
    from tensorforge import plugin
    plugin.load(path)
