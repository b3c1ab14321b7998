"""The engine file: one versioned file = magic, header (JSON), weights (safetensors), artifacts.

Layout (little endian):
  b"TFENGINE" | u32 format version | u64 header bytes | u64 weights bytes | u64 artifacts bytes
  | u32 crc32 of everything after this prefix | header JSON | safetensors blob | artifacts blob

Reading checks the declared sizes against the real file size before reading anything, streams the
weights straight into their tensors (a load holds about one copy of the file), verifies the
checksum, then validates the header against the schema (runtime/schema.py).
"""
from __future__ import annotations

import io
import json
import struct
import zlib

import torch

from ..errors import EngineFormatError, TensorforgeError
from ..fileio import atomic_write, regular_file
from .schema import validate_header

MAGIC = b"TFENGINE"
FORMAT_VERSION = 2  # 2: artifacts are cubins + launch metadata (1 stored Triton cache files with host code)
_PREFIX = struct.Struct("<8sIQQQI")
MAX_HEADER = 256 << 20  # JSON header and safetensors header: far above any real engine's
_ST_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
              "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
              "BOOL": torch.bool, "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
              "U16": torch.uint16, "U32": torch.uint32, "U64": torch.uint64}


_ST_NAMES = {dt: name for name, dt in _ST_DTYPES.items()}


def _bytes_of(t: torch.Tensor) -> memoryview:
    """The raw bytes of t as a CPU tensor (no copy when it already is a contiguous CPU tensor)."""
    t = t.detach()
    if t.device.type != "cpu" or not t.is_contiguous():
        t = t.to("cpu").contiguous()
    return memoryview(t.reshape(-1).view(torch.uint8).numpy()) if t.numel() else memoryview(b"")


def _weights_header(weights: dict[str, torch.Tensor]) -> tuple[list, bytes, int]:
    """(names in blob order, the safetensors header padded to 8 bytes, data bytes): tensors ordered by
    element size, then name, as the safetensors library orders them, so every tensor starts aligned to
    its element size."""
    order = sorted(weights, key=lambda k: (-weights[k].element_size(), k))
    meta, off = {}, 0
    for k in order:
        t = weights[k]
        if t.dtype not in _ST_NAMES:
            raise TensorforgeError(f"weight '{k}': dtype {t.dtype} cannot be stored in an engine file")
        n = t.numel() * t.element_size()
        meta[k] = {"dtype": _ST_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + n]}
        off += n
    hdr = json.dumps(meta, separators=(",", ":")).encode()
    return order, hdr + b" " * (-len(hdr) % 8), off


def _weights_parts(weights: dict[str, torch.Tensor]) -> list:
    """The safetensors blob of weights as a list of buffers (u64 header size, header, then each
    tensor's bytes in place)."""
    if not weights:
        return []
    order, hdr, _ = _weights_header(weights)
    return [struct.pack("<Q", len(hdr)), hdr] + [_bytes_of(weights[k]) for k in order]


def _header_bytes(header: dict) -> bytes:
    return json.dumps(header, separators=(",", ":"), sort_keys=True).encode()


def size(header: dict, weights: dict[str, torch.Tensor], artifacts: bytes = b"") -> int:
    """The bytes of the engine file parts() writes, from shapes alone (no tensor data is read)."""
    nw = 0
    if weights:
        _, hdr, data = _weights_header(weights)
        nw = 8 + len(hdr) + data
    return _PREFIX.size + len(_header_bytes(header)) + nw + len(artifacts)


def parts(header: dict, weights: dict[str, torch.Tensor], artifacts: bytes = b"") -> list:
    """An engine file as a list of buffers (prefix first); their concatenation is pack()'s bytes."""
    hdr = _header_bytes(header)
    w = _weights_parts(weights)
    body = [hdr, *w, artifacts]
    crc = 0
    for b in body:
        crc = zlib.crc32(b, crc)
    nw = sum(len(b) for b in w)
    return [_PREFIX.pack(MAGIC, FORMAT_VERSION, len(hdr), nw, len(artifacts), crc), *body]


def pack(header: dict, weights: dict[str, torch.Tensor], artifacts: bytes = b"") -> bytes:
    """Serialize an engine into bytes."""
    return b"".join(parts(header, weights, artifacts))


def save(path: str, data) -> None:
    """Write atomically through an exclusive temp file: a partial write never replaces an existing file.
    data: bytes, or a list of buffers (parts()) written one after the other with no joined copy."""
    try:
        atomic_write(path, data, "engine file")
    except TensorforgeError as e:
        raise EngineFormatError(str(e)) from None


class _Reader:
    """Reads exactly n bytes at a time, keeping the running crc32; a short read is a corrupt file."""

    def __init__(self, f, source):
        self.f, self.source, self.crc = f, source, 0

    def read(self, n: int) -> bytes:
        b = self.f.read(n)
        if len(b) != n:
            raise EngineFormatError(f"{self.source}: engine file is truncated")
        self.crc = zlib.crc32(b, self.crc)
        return b

    def read_into(self, t: torch.Tensor) -> None:
        buf = memoryview(t.reshape(-1).view(torch.uint8).numpy()) if t.numel() else memoryview(b"")
        if len(buf) and self.f.readinto(buf) != len(buf):
            raise EngineFormatError(f"{self.source}: engine file is truncated")
        self.crc = zlib.crc32(buf, self.crc)


def _bad(source, what):
    return EngineFormatError(f"{source}: engine file is corrupt ({what})")


def _st_entries(meta, size: int, source: str) -> list:
    """[(start, end, name, dtype, shape)] of a safetensors header, checked against the blob size."""
    if not isinstance(meta, dict):
        raise _bad(source, "weights header is not an object")
    out = []
    for name, e in meta.items():
        if name == "__metadata__":
            continue
        if not (isinstance(e, dict) and e.get("dtype") in _ST_DTYPES and isinstance(e.get("shape"), list)
                and isinstance(e.get("data_offsets"), list) and len(e["data_offsets"]) == 2):
            raise _bad(source, f"weight '{str(name)[:80]}' has a malformed entry")
        shape, (a, b) = e["shape"], e["data_offsets"]
        if not all(type(d) is int and 0 <= d <= size for d in shape + [a, b]) or not a <= b <= size:
            raise _bad(source, f"weight '{str(name)[:80]}' lies outside the weights")
        n = 1
        for d in shape:
            n *= d
        dt = _ST_DTYPES[e["dtype"]]
        if n * dt.itemsize != b - a:
            raise _bad(source, f"weight '{str(name)[:80]}' size does not match its shape")
        out.append((a, b, name, dt, shape))
    out.sort(key=lambda x: x[:2])
    for prev, cur in zip(out, out[1:]):
        if cur[0] < prev[1]:
            raise _bad(source, f"weights '{prev[2][:80]}' and '{cur[2][:80]}' overlap")
    return out


def _read_weights(r: _Reader, nw: int, source: str) -> dict:
    """Stream the safetensors blob into one tensor per weight (no intermediate copy of the blob)."""
    if nw == 0:
        return {}
    if nw < 8:
        raise _bad(source, "weights blob too short")
    n = struct.unpack("<Q", r.read(8))[0]
    if n > min(nw - 8, MAX_HEADER):
        raise _bad(source, "weights header size out of range")
    try:
        meta = json.loads(r.read(n))
    except (ValueError, RecursionError):
        raise _bad(source, "weights header is not JSON") from None
    data_size = nw - 8 - n
    pos, out = 0, {}
    for a, b, name, dt, shape in _st_entries(meta, data_size, source):
        while pos < a:  # a gap (alignment padding): part of the checksum
            pos += len(r.read(min(a - pos, 1 << 20)))
        t = torch.empty(shape, dtype=dt)
        r.read_into(t)
        out[name] = t
        pos = b
    while pos < data_size:
        pos += len(r.read(min(data_size - pos, 1 << 20)))
    return out


def _parse(f, size: int, source: str):
    """(header, weights, artifacts) from a file object of `size` bytes; one-line errors on bad input."""
    prefix = f.read(_PREFIX.size)
    if len(prefix) < _PREFIX.size or not prefix.startswith(MAGIC):
        raise EngineFormatError(f"{source}: not a tensorforge engine file")
    magic, version, nh, nw, na, crc = _PREFIX.unpack(prefix)
    if version != FORMAT_VERSION:
        raise EngineFormatError(f"{source}: engine format version {version} is not supported "
                                f"(this tensorforge reads version {FORMAT_VERSION}); rebuild this engine")
    body = size - _PREFIX.size
    if body != nh + nw + na:  # before anything else is read: the sizes must add up to the real file
        raise EngineFormatError(f"{source}: engine file is truncated or corrupt "
                                f"({body} of {nh + nw + na} bytes)")
    if nh > MAX_HEADER:
        raise _bad(source, f"header of {nh} bytes")
    r = _Reader(f, source)
    hdr = r.read(nh)
    weights = _read_weights(r, nw, source)
    artifacts = r.read(na)
    if r.crc != crc:
        raise EngineFormatError(f"{source}: engine file is corrupt (checksum mismatch)")
    try:
        header = json.loads(hdr)
    except (ValueError, RecursionError):
        raise _bad(source, "header is not JSON") from None
    return validate_header(header, source), weights, artifacts


def unpack(data: bytes, source: str = "<bytes>"):
    """Parse engine bytes into (header, weights, artifacts); one-line errors on bad input."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise EngineFormatError(f"{source}: expected engine bytes, got {type(data).__name__}")
    return _parse(io.BytesIO(data), len(data), source)


def read(path: str):
    """Read an engine file (regular files only: a FIFO or a device is refused, never read)."""
    try:
        st = regular_file(path, "engine file")
    except TensorforgeError as e:
        raise EngineFormatError(str(e)) from None
    try:
        with open(path, "rb") as f:
            return _parse(f, st.st_size, path)
    except OSError as e:
        raise EngineFormatError(f"cannot read engine file {path}: {e.strerror}") from None
