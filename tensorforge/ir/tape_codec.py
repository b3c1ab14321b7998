"""Weight tape storage and replay: torch functions by name, arguments as JSON-able data, literal
tensors as base64 bytes; replay runs the calls in order and re-checks every guard."""
from __future__ import annotations

import base64
import importlib
import math
import zlib

import numpy as np
import torch

from ..errors import TensorforgeError
from .tape_ops import REPLAYABLE


class TapeError(TensorforgeError):
    """A call the tape cannot store (the engine then refits by re-running the build's passes)."""


class GuardError(TensorforgeError):
    """New weights change a value the build decided on."""


_DTYPES = {str(d).replace("torch.", ""): d for d in (torch.float32, torch.float64, torch.float16, torch.bfloat16,
                                                       torch.int64, torch.int32, torch.int16, torch.int8,
                                                       torch.uint8, torch.bool, torch.float8_e4m3fn,
                                                       torch.float8_e5m2)}
_FORMATS = {"contiguous_format": torch.contiguous_format, "channels_last": torch.channels_last,
            "preserve_format": torch.preserve_format, "channels_last_3d": torch.channels_last_3d}


def func_name(func) -> str:
    """A stable name of a torch function, method or property getter (TapeError if there is none)."""
    owner = getattr(func, "__self__", None)
    if type(func).__name__ == "method-wrapper" and type(owner).__name__ == "getset_descriptor":
        return f"Tensor.{owner.__name__}.__get__"
    name = getattr(func, "__name__", None)
    qual = getattr(func, "__qualname__", "") or ""
    if name == "__deepcopy__":
        return "Tensor.clone"  # deepcopy(t) and t.clone() give equal data; the memo is not storable
    if qual.startswith(("TensorBase.", "Tensor.")) and getattr(torch.Tensor, name, None) is func:
        if not _allowed(name):
            raise TapeError(f"Tensor.{name} is not replayed by a refit")
        return f"Tensor.{name}"
    mod = getattr(func, "__module__", None) or ""
    if mod == "tensorforge.ir.tape_ops" and REPLAYABLE.get(name) is func:
        return f"{mod}:{name}"
    if mod in _MODULES and name and _allowed(name) and getattr(importlib.import_module(mod), name, None) is func:
        return f"{mod}:{name}"
    raise TapeError(f"torch function {func!r} has no storable name")


# a refit calls only what these name: torch's math, never file, process or global-state functions
_MODULES = ("torch", "torch.functional", "torch.nn.functional", "torch.linalg", "torch.special", "torch.fft")
_DENY = ("save", "load", "file", "set_", "seed", "compile", "hub", "jit", "export", "library", "cuda",
         "backends", "deterministic", "manual", "storage", "share_memory", "pin_memory", "register", "grad")


def _allowed(attr: str) -> bool:
    """Names a replay may call: public math of torch or dunder operators of Tensor."""
    if attr.startswith("__") and attr.endswith("__"):
        return attr not in ("__reduce__", "__reduce_ex__", "__setstate__", "__del__", "__init__", "__new__")
    return not attr.startswith("_") and not any(d in attr.lower() for d in _DENY)


_RESOLVED: dict = {}


def resolve(name: str):
    """The callable a func_name stands for."""
    f = _RESOLVED.get(name)
    if f is None:
        mod, _, attr = name.partition(":")
        if name.endswith(".__get__") and name.count(".") == 2 and _allowed(name.split(".")[1]):
            prop = name.split(".")[1]
            f = lambda t, *a: getattr(t, prop)  # noqa: E731 - a property read
        elif name.startswith("Tensor.") and _allowed(name[len("Tensor."):]) \
                and callable(getattr(torch.Tensor, name[len("Tensor."):], None)):
            f = getattr(torch.Tensor, name[len("Tensor."):])
        elif mod == "tensorforge.ir.tape_ops" and attr in REPLAYABLE:
            f = REPLAYABLE[attr]
        elif mod in _MODULES and _allowed(attr) and callable(getattr(importlib.import_module(mod), attr, None)):
            f = getattr(importlib.import_module(mod), attr)
        else:
            raise TensorforgeError(f"weight tape names a function a refit does not call: {name!r}")
        _RESOLVED[name] = f
    return f


def encode_value(x, rec):
    """x as JSON-able data; tensors become {"n": node} (untracked ones a literal snapshot of rec)."""
    if isinstance(x, torch.Tensor):
        if rec is None:
            raise TapeError("a tensor in a guard value")
        n = rec.node(x)
        return {"n": n if n is not None else rec.literal(x)}
    if x is None or isinstance(x, (bool, int, str)):
        return x
    if isinstance(x, float):
        return {"f": x.hex()}
    if isinstance(x, torch.Size):
        return {"sz": list(x)}
    if isinstance(x, tuple):
        return {"t": [encode_value(y, rec) for y in x]}
    if isinstance(x, list):
        return [encode_value(y, rec) for y in x]
    if isinstance(x, torch.dtype):
        return {"dt": str(x).replace("torch.", "")}
    if isinstance(x, torch.device):
        return {"dev": str(x)}
    if isinstance(x, torch.memory_format):
        return {"mf": str(x).replace("torch.", "")}
    if isinstance(x, slice):
        return {"sl": [encode_value(x.start, rec), encode_value(x.stop, rec), encode_value(x.step, rec)]}
    if x is Ellipsis:
        return {"el": 0}
    if isinstance(x, np.generic):
        return encode_value(x.item(), rec)
    raise TapeError(f"cannot store an argument of type {type(x).__name__}")


def decode_value(x, env):
    """encode_value's inverse, tensors taken from env."""
    if isinstance(x, list):
        return [decode_value(y, env) for y in x]
    if not isinstance(x, dict):
        return x
    (k, v), = x.items()
    if k == "n":
        return env[v]
    if k == "f":
        return float.fromhex(v)
    if k == "t":
        return tuple(decode_value(y, env) for y in v)
    if k == "sz":
        return torch.Size(v)
    if k == "dt":
        return _DTYPES[v]
    if k == "dev":
        return torch.device(v)
    if k == "mf":
        return _FORMATS[v]
    if k == "sl":
        return slice(*(decode_value(y, env) for y in v))
    if k == "el":
        return Ellipsis
    raise TensorforgeError(f"weight tape: unknown value kind {k!r}")


def pack_tensor(t: torch.Tensor) -> list:
    """[dtype, shape, base64 bytes(, "z" when zlib-compressed)] of a tensor (literals are mostly
    zeros and ones: a zero bias of 2048 float64 is 16 KiB raw, 30 bytes compressed)."""
    t = t.detach().contiguous().cpu()
    raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
    z = zlib.compress(raw, 1)
    head = [str(t.dtype).replace("torch.", ""), list(t.shape)]
    if len(z) < len(raw) // 2:
        return head + [base64.b64encode(z).decode(), "z"]
    return head + [base64.b64encode(raw).decode()]


def unpack_tensor(p) -> torch.Tensor:
    """pack_tensor's inverse; its size checked against dtype and shape (a file is never trusted)."""
    dt, shape, b64 = p[:3]
    if dt not in _DTYPES or not all(isinstance(d, int) and 0 <= d < 2**40 for d in shape):
        raise TensorforgeError(f"weight tape: bad literal {dt} {shape}")
    want = math.prod(shape) * _DTYPES[dt].itemsize
    raw = base64.b64decode(b64)
    if p[3:] == ["z"]:
        d = zlib.decompressobj()
        raw = d.decompress(raw, want + 1)
    if len(raw) != want:
        raise TensorforgeError(f"weight tape: literal of {len(raw)} bytes, {dt} {shape} needs {want}")
    raw = bytearray(raw)
    t = torch.frombuffer(raw, dtype=torch.uint8) if raw else torch.empty(0, dtype=torch.uint8)
    return t.view(_DTYPES[dt]).reshape(shape)


def run(tape: dict, env: dict, into: dict | None = None) -> dict:
    """Replay the tape on env {node: tensor} (sources filled); {engine weight: tensor}. into {node:
    tensor}: results that a tape_ops call writes straight into (the engine's weights: no copy)."""
    into = into or {}
    for name, ins, kw, res, guard, where in tape["ops"]:
        kw = {k: decode_value(v, env) for k, v in kw.items()}
        args = decode_value(ins, env)
        if isinstance(res, int) and res in into and _fits(name, args, kw, into[res]):
            kw["out"] = into[res]
        out = resolve(name)(*args, **kw)
        if isinstance(res, int):
            env[res] = out
        elif isinstance(res, list):
            for k, o in zip(res, out):
                env[k] = o
        elif where is not None:
            got = encode_value(out.tolist() if hasattr(out, "tolist") else out, None)
            if got != guard:
                raise GuardError(f"the new weights change a value the build decided on at {where} "
                                 f"({_short(guard)} at build, {_short(got)} now); rebuild instead")
    return {k: env[n] for k, n in tape["outputs"].items()}


def _fits(name: str, args: list, kw: dict, target: torch.Tensor) -> bool:
    """Whether a call may write into target: tape_ops calls check it themselves; a cat when its
    result has target's shape and dtype (torch would resize a mismatched out= tensor)."""
    if name != "torch:cat":
        return True
    parts, dim = args[0], args[1] if len(args) > 1 else kw.get("dim", 0)
    if not parts or any(p.dtype != target.dtype or p.dim() != target.dim() for p in parts):
        return False
    shape = list(parts[0].shape)
    shape[dim] = sum(p.shape[dim] for p in parts)
    return shape == list(target.shape)


def _short(v) -> str:
    s = repr(v)
    return s if len(s) <= 60 else s[:57] + "..."
