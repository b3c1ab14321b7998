"""HTTP bodies <-> arrays: JSON (nested lists + dtype) and NumPy (.npy / .npz), told apart by content."""
from __future__ import annotations

import io
import json
import zipfile

import numpy as np

from .spec import RequestError, ServeSpec, np_dtype

NPY_MAGIC = b"\x93NUMPY"
NPZ_MAGIC = b"PK\x03\x04"
NPZ_TYPE = "application/x-npz"

# JSON request:  {"inputs": {"input": [[...]]}}  or  {"inputs": {"input": {"data": [[...]], "dtype": "float32"}}}
# JSON answer:   {"outputs": {"output": {"data": [[...]], "dtype": "float32", "shape": [2, 1000]}}}
# NumPy request: a .npy body (engines with one input) or a .npz body (one array per input);
#                answered with a .npz body (one array per output).


def is_numpy(body: bytes) -> bool:
    return body.startswith(NPY_MAGIC) or body.startswith(NPZ_MAGIC)


def decode(spec: ServeSpec, body: bytes) -> dict:
    """Request body -> {input name: array}; RequestError (400) for anything malformed."""
    if not body:
        raise RequestError("empty request body (send JSON or a .npy/.npz body)")
    if body.startswith(NPY_MAGIC):
        if len(spec.inputs) != 1:
            raise RequestError(f"a .npy body carries one array but the engine has {len(spec.inputs)} inputs "
                               f"({', '.join(spec.input_names)}); send a .npz body")
        return {spec.inputs[0].name: _load(body)}
    if body.startswith(NPZ_MAGIC):
        try:
            with np.load(io.BytesIO(body), allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
            raise RequestError(f"malformed .npz body: {_first(e)}") from None
    return decode_json(spec, body)


def _load(body: bytes) -> np.ndarray:
    try:
        return np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise RequestError(f"malformed .npy body: {_first(e)}") from None


def decode_json(spec: ServeSpec, body: bytes) -> dict:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise RequestError(f"malformed JSON body: {_first(e)}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), dict):
        raise RequestError('JSON body must be {"inputs": {NAME: nested list or {"data": ..., "dtype": ...}}}')
    out = {}
    for name, v in doc["inputs"].items():
        s = spec.input(name)  # unknown names: 400 naming the engine's inputs
        want = np_dtype(s)
        data, given = (v.get("data"), v.get("dtype")) if isinstance(v, dict) else (v, None)
        if given is not None and given != str(want):
            raise RequestError(f"input '{name}' has dtype {given}, engine expects {want}")
        out[name] = _array(name, data, want)
    return out


def _array(name: str, data, want: np.dtype) -> np.ndarray:
    if data is None:
        raise RequestError(f"input '{name}' has no data")
    try:
        raw = np.asarray(data)
    except ValueError as e:
        raise RequestError(f"input '{name}': not a rectangular nested list ({_first(e)})") from None
    if raw.dtype == object or raw.dtype.kind not in "biuf":
        raise RequestError(f"input '{name}': data must be numbers in a rectangular nested list")
    if want.kind in "iub" and raw.dtype.kind == "f":  # never truncate floats into an integer input
        raise RequestError(f"input '{name}' has floating-point data, engine expects {want}")
    return raw.astype(want, copy=False)


def encode_json(outputs: dict) -> bytes:
    return json.dumps({"outputs": {n: {"data": a.tolist(), "dtype": str(a.dtype), "shape": list(a.shape)}
                                   for n, a in outputs.items()}}).encode()


def encode_npz(outputs: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **outputs)
    return buf.getvalue()


def decode_answer(body: bytes) -> dict:
    """Client side: an answer body (.npz or JSON) -> {output name: array}."""
    if body.startswith(NPZ_MAGIC):
        with np.load(io.BytesIO(body), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    doc = json.loads(body)
    return {n: np.asarray(v["data"], dtype=v["dtype"]).reshape(v["shape"]) for n, v in doc["outputs"].items()}


def _first(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0][:200] if lines else type(e).__name__
