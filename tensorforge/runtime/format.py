"""The engine file: one versioned file = magic, header (JSON), weights (safetensors), artifacts.

Layout (little endian):
  b"TFENGINE" | u32 format version | u64 header bytes | u64 weights bytes | u64 artifacts bytes
  | u32 crc32 of everything after this prefix | header JSON | safetensors blob | artifacts blob
"""
from __future__ import annotations

import json
import os
import struct
import zlib

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ..errors import EngineFormatError

MAGIC = b"TFENGINE"
FORMAT_VERSION = 2  # 2: artifacts are cubins + launch metadata (1 stored Triton cache files with host code)
_PREFIX = struct.Struct("<8sIQQQI")


def pack(header: dict, weights: dict[str, torch.Tensor], artifacts: bytes = b"") -> bytes:
    """Serialize an engine into bytes."""
    hdr = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    # safetensors needs contiguous CPU tensors that do not share storage
    w = st_save({k: v.detach().to("cpu").contiguous().clone() for k, v in weights.items()}) if weights else b""
    body = hdr + w + artifacts
    prefix = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(hdr), len(w), len(artifacts), zlib.crc32(body))
    return prefix + body


def save(path: str, data: bytes) -> None:
    """Write atomically: a partial write never replaces an existing file."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise EngineFormatError(f"cannot write engine file {path}: {e.strerror}") from None


def unpack(data: bytes, source: str = "<bytes>"):
    """Parse engine bytes into (header, weights, artifacts); one-line errors on bad input."""
    if len(data) < _PREFIX.size or not data.startswith(MAGIC):
        raise EngineFormatError(f"{source}: not a tensorforge engine file")
    magic, version, nh, nw, na, crc = _PREFIX.unpack_from(data)
    if version != FORMAT_VERSION:
        raise EngineFormatError(f"{source}: engine format version {version} is not supported "
                                f"(this tensorforge reads version {FORMAT_VERSION}); rebuild this engine")
    body = memoryview(data)[_PREFIX.size:]
    if len(body) != nh + nw + na:
        raise EngineFormatError(f"{source}: engine file is truncated or corrupt "
                                f"({len(body)} of {nh + nw + na} bytes)")
    if zlib.crc32(body) != crc:
        raise EngineFormatError(f"{source}: engine file is corrupt (checksum mismatch)")
    try:
        header = json.loads(bytes(body[:nh]))
        weights = st_load(bytes(body[nh:nh + nw])) if nw else {}
    except Exception as e:
        raise EngineFormatError(f"{source}: engine file is corrupt ({type(e).__name__})") from None
    return header, weights, bytes(body[nh + nw:])


def read(path: str):
    if not os.path.exists(path):
        raise EngineFormatError(f"engine file not found: {path}")
    if os.path.isdir(path):
        raise EngineFormatError(f"engine path is a directory: {path}")
    with open(path, "rb") as f:
        return unpack(f.read(), path)
