"""Engine header schema: every value checked for type, range and cross-reference before it is used.

A small hand-written validator (no jsonschema dependency): errors name the path of the bad value,
e.g. `plan.tensors[3].shape[0]`, in one line."""
from __future__ import annotations

from ..dtypes import NAMES
from ..errors import EngineFormatError, TensorforgeError
from .shapes import MAX_VALUE, DimError, compile_dim

DTYPES = NAMES
MAX_NAME = 4096
MAX_RANK = 64
MAX_DIM = 2**40  # no static dim of a real engine is larger; the element-count check bounds the rest
MAX_ARENA = 2**44  # 16 TiB: far above any device, far below an overflow
KINDS = ("input", "output", "activation", "weight", "shape")
MODES = ("kernel", "view", "copy")


class _Bad(Exception):
    def __init__(self, path, what):
        super().__init__(f"{path}: {what}")


def _type(v, t, path, what):
    if not isinstance(v, t) or (t is int and isinstance(v, bool)):
        raise _Bad(path, f"expected {what}, got {type(v).__name__}")
    return v


def _int(v, path, lo=0, hi=MAX_VALUE):
    _type(v, int, path, "an integer")
    if not lo <= v <= hi:
        raise _Bad(path, f"{v} is out of range {lo}..{hi}")
    return v


def _str(v, path, limit=MAX_NAME):
    _type(v, str, path, "a string")
    if len(v) > limit:
        raise _Bad(path, f"string of {len(v)} characters exceeds {limit}")
    return v


def _dict(v, path, required=(), optional=()):
    _type(v, dict, path, "an object")
    for k in required:
        if k not in v:
            raise _Bad(path, f"missing key '{k}'")
    extra = set(v) - set(required) - set(optional) if (required or optional) else set()
    if extra:
        raise _Bad(path, f"unknown key '{sorted(extra)[0]}'")
    return v


def _list(v, path, limit=1 << 20):
    _type(v, list, path, "a list")
    if len(v) > limit:
        raise _Bad(path, f"list of {len(v)} items exceeds {limit}")
    return v


def _dim(d, path):
    if isinstance(d, str):
        try:
            compile_dim(_str(d, path))
        except DimError as e:
            raise _Bad(path, str(e)) from None
        return d
    return _int(d, path, 0, MAX_DIM)


def _shape(s, path):
    for i, d in enumerate(_list(s, path, MAX_RANK)):
        _dim(d, f"{path}[{i}]")
    return s


def _dtype_ok(dt: str) -> bool:
    """A tensor element type, or a sequence / optional of one (`seq(float32:2,?)`, `opt(...)`)."""
    while dt.startswith(("seq(", "opt(")) and dt.endswith(")"):
        dt = dt[4:-1]
    return dt.split(":", 1)[0] in DTYPES


def _tensor(t, path):
    _dict(t, path, ("name", "dtype", "shape"), ("kind", "sym", "host", "dynamic"))
    _str(t["name"], f"{path}.name")
    if not _dtype_ok(_str(t["dtype"], f"{path}.dtype")):
        raise _Bad(f"{path}.dtype", f"unknown dtype '{t['dtype'][:40]}'")
    _shape(t["shape"], f"{path}.shape")
    if t.get("kind", "activation") not in KINDS:
        raise _Bad(f"{path}.kind", f"unknown kind {t.get('kind')!r:.40}")
    if t.get("sym") is not None:
        for i, d in enumerate(_list(t["sym"], f"{path}.sym", 1 << 16)):
            if isinstance(d, int) and not isinstance(d, bool):
                _int(d, f"{path}.sym[{i}]", -MAX_VALUE)
            else:
                _dim(d, f"{path}.sym[{i}]")
    for k in ("host", "dynamic"):
        _type(t.get(k, False), bool, f"{path}.{k}", "true or false")


def _names(v, path, tensors, allow_none=False):
    for i, n in enumerate(_list(v, path)):
        if n is None and allow_none:
            continue
        if _str(n, f"{path}[{i}]") not in tensors:
            raise _Bad(f"{path}[{i}]", f"tensor '{n[:80]}' is not in plan.tensors")


def _layer(lay, path, tensors):
    _dict(lay, path, ("name", "type", "inputs", "outputs"),
          ("tactic", "attrs", "domain", "origin", "mode", "host_inputs", "precision", "stream"))
    for k in ("name", "type", "domain", "precision"):
        if k in lay:
            _str(lay[k], f"{path}.{k}")
    _names(lay["inputs"], f"{path}.inputs", tensors, allow_none=True)
    _names(lay["outputs"], f"{path}.outputs", tensors)
    tac = _dict(lay.get("tactic", {"source": "aten", "name": "reference"}), f"{path}.tactic",
                ("source", "name"), ("params",))
    _str(tac["source"], f"{path}.tactic.source")
    _str(tac["name"], f"{path}.tactic.name")
    _dict(tac.get("params", {}), f"{path}.tactic.params")
    _dict(lay.get("attrs", {}), f"{path}.attrs")
    for i, o in enumerate(_list(lay.get("origin", []), f"{path}.origin")):
        _str(o, f"{path}.origin[{i}]")
    if lay.get("mode", "kernel") not in MODES:
        raise _Bad(f"{path}.mode", f"unknown mode {lay.get('mode')!r:.40}")
    if lay.get("mode") == "view" and not lay["inputs"]:
        raise _Bad(f"{path}.inputs", "a view layer needs an input")
    for i, j in enumerate(_list(lay.get("host_inputs", []), f"{path}.host_inputs")):
        _int(j, f"{path}.host_inputs[{i}]", 0, max(len(lay["inputs"]) - 1, 0))
    _int(lay.get("stream", 0), f"{path}.stream", 0, 1024)


def _profile(p, path, tensors):
    _dict(p, path, (), ("shapes", "values"))
    for name, triple in _dict(p.get("shapes", {}), f"{path}.shapes").items():
        q = f"{path}.shapes.{name[:80]}"
        if name not in tensors:
            raise _Bad(q, "not a tensor of the plan")
        if len(_list(triple, q)) != 3:
            raise _Bad(q, "expected [min, opt, max]")
        rank = len(tensors[name]["shape"])
        for i, s in enumerate(triple):
            if len(_list(s, f"{q}[{i}]", MAX_RANK)) != rank:
                raise _Bad(f"{q}[{i}]", f"rank {len(s)} differs from the tensor's rank {rank}")
            for j, d in enumerate(s):
                _int(d, f"{q}[{i}][{j}]", 0, MAX_DIM)
    for name, triple in _dict(p.get("values", {}), f"{path}.values").items():
        q = f"{path}.values.{name[:80]}"
        if name not in tensors or len(_list(triple, q)) != 3:
            raise _Bad(q, "expected [min, opt, max] values of a plan tensor")
        for i, s in enumerate(triple):
            for j, d in enumerate(_list(s, f"{q}[{i}]", 1 << 16)):
                _int(d, f"{q}[{i}][{j}]", -MAX_VALUE)


def _plan(p):
    _dict(p, "plan", ("tensors", "layers", "inputs", "outputs", "opset", "profiles", "config",
                      "device_memory_size"), ("num_aux_streams", "meta"))
    tensors = {}
    for i, t in enumerate(_list(p["tensors"], "plan.tensors")):
        _tensor(t, f"plan.tensors[{i}]")
        if t["name"] in tensors:
            raise _Bad(f"plan.tensors[{i}].name", f"duplicate tensor '{t['name'][:80]}'")
        tensors[t["name"]] = t
    for i, lay in enumerate(_list(p["layers"], "plan.layers")):
        _layer(lay, f"plan.layers[{i}]", tensors)
    _names(p["inputs"], "plan.inputs", tensors)
    _names(p["outputs"], "plan.outputs", tensors)
    _int(p["opset"], "plan.opset", 1, 1000)
    for i, prof in enumerate(_list(p["profiles"], "plan.profiles", 1024)):
        _profile(prof, f"plan.profiles[{i}]", tensors)
    _dict(p["config"], "plan.config")
    _int(p["device_memory_size"], "plan.device_memory_size", 0, MAX_ARENA)
    _int(p.get("num_aux_streams", 0), "plan.num_aux_streams", 0, 1024)
    _dict(p.get("meta", {}), "plan.meta")


def _device(d):
    _dict(d, "device", ("type",), ("name", "capability"))
    if d["type"] not in ("cpu", "cuda"):
        raise _Bad("device.type", f"unknown device type {d['type']!r:.40}")
    _str(d.get("name", ""), "device.name")
    cap = d.get("capability")
    if d["type"] == "cuda" or cap is not None:
        if len(_list(cap, "device.capability")) != 2:
            raise _Bad("device.capability", "expected [major, minor]")
        for i, c in enumerate(cap):
            _int(c, f"device.capability[{i}]", 0, 1000)


def validate_header(header, source: str) -> dict:
    """Check an engine header against the schema; EngineFormatError naming the bad value."""
    try:
        _dict(header, "header", ("device", "plan"), ("build", "tensorforge_version", "torch_version"))
        _device(header["device"])
        _dict(header.get("build", {}), "build")
        for k in ("tensorforge_version", "torch_version"):
            if k in header:
                _str(header[k], k, 256)
        _plan(header["plan"])
    except _Bad as e:
        raise EngineFormatError(f"{source}: engine header is invalid: {e}") from None
    return header


def check_weights(plan, weights: dict, source: str) -> None:
    """Every weight the plan names is in the file with the declared dtype and shape."""
    import torch

    from ..dtypes import to_torch
    for name, t in plan.tensors.items():
        if t.kind != "weight":
            continue
        w = weights.get(name)
        if w is None:
            raise EngineFormatError(f"{source}: weight '{name[:80]}' named by the plan is missing from the file")
        if not isinstance(w, torch.Tensor) or w.dtype != to_torch(t.dtype) or (
                all(isinstance(d, int) for d in t.shape) and list(w.shape) != list(t.shape)):
            raise EngineFormatError(f"{source}: weight '{name[:80]}' is {w.dtype} {list(w.shape)} in the file "
                                    f"but the plan declares {t.dtype} {list(t.shape)}")


MAX_TENSOR_BYTES = 2**46  # 64 TiB: no device holds more; above it a size is an overflow or a crafted file


def check_shapes(plan, source: str) -> None:
    """Every tensor's shape evaluates (bounded) at each profile's max shapes and fits MAX_TENSOR_BYTES;
    input and output shapes may not name symbols the inputs do not bind."""
    from ..dtypes import itemsize
    from .binding import _bind_symbols
    from .shapes import eval_shape
    profiles = plan.profiles or [None]
    for k, prof in enumerate(profiles):
        shapes = {n: tuple(plan.tensors[n].shape) for n in plan.inputs
                  if all(isinstance(d, int) for d in plan.tensors[n].shape)}
        values = {}
        if prof is not None:
            shapes.update({n: tuple(mx) for n, (_, _, mx) in prof.shapes.items()})
            values = {n: list(mx) for n, (_, _, mx) in prof.values.items()}
        try:
            env = _bind_symbols(plan, shapes, values)
        except (TensorforgeError, NameError, KeyError, ValueError, TypeError):
            continue  # shapes the runtime binds itself (shape-tensor values at run time)
        for name, t in plan.tensors.items():
            try:
                shape = eval_shape(t.shape, env)
            except NameError:
                if t.kind in ("input", "output") and not t.dynamic and prof is not None:
                    raise EngineFormatError(f"{source}: engine header is invalid: tensor '{name[:80]}' has "
                                            f"shape {t.shape} with symbols no input binds") from None
                continue
            except DimError as e:
                raise EngineFormatError(f"{source}: engine header is invalid: tensor '{name[:80]}': {e}") from None
            n = itemsize(t.dtype)
            for d in shape:
                n *= max(d, 0)
            if n > MAX_TENSOR_BYTES:
                raise EngineFormatError(f"{source}: engine header is invalid: tensor '{name[:80]}' of shape "
                                        f"{list(shape)} needs {n} bytes (profile {k} max), over {MAX_TENSOR_BYTES}")
