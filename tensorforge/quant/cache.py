"""TensorRT calibration caches (text): a header line `TRT-<version>-<Algorithm>`, then one line
`tensor: <8 hex digits>` per tensor, the big-endian IEEE-754 float32 scale (amax = scale · 127)."""
from __future__ import annotations

import struct

from ..errors import TensorforgeError
from ..fileio import atomic_write, regular_file

MAX_BYTES = 64 << 20  # a cache holds one short line per tensor: 64 MiB is millions of tensors


def read_cache(path: str) -> dict:
    """{tensor name: scale} of a TensorRT calibration cache file."""
    if regular_file(path, "calibration cache").st_size > MAX_BYTES:
        raise TensorforgeError(f"{path}: over {MAX_BYTES >> 20} MiB, not a TensorRT calibration cache")
    try:
        with open(path, "rb") as f:
            lines = f.read(MAX_BYTES + 1).decode("utf-8").splitlines()
    except OSError as e:
        raise TensorforgeError(f"{path}: cannot read the calibration cache ({e.strerror})") from None
    except UnicodeDecodeError:
        raise TensorforgeError(f"{path}: not a TensorRT calibration cache (not text)") from None
    if not lines or not lines[0].startswith("TRT-"):
        raise TensorforgeError(f"{path}: not a TensorRT calibration cache (first line must start with 'TRT-')")
    scales = {}
    for i, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        name, sep, hexv = line.rpartition(":")
        try:
            scales[name.strip()] = struct.unpack(">f", bytes.fromhex(hexv.strip()))[0]
        except ValueError:
            raise TensorforgeError(f"{path}:{i}: expected 'name: 8 hex digits', got {line!r}") from None
        if not sep:
            raise TensorforgeError(f"{path}:{i}: expected 'name: 8 hex digits', got {line!r}")
    return scales


def write_cache(path: str, scales: dict, algorithm: str = "EntropyCalibration2", version: str = "100000") -> None:
    """Write {tensor name: scale} as a TensorRT calibration cache (atomically: a failed write leaves
    an existing file as it was)."""
    lines = [f"TRT-{version}-{algorithm}\n"] + [f"{name}: {struct.pack('>f', float(s)).hex()}\n"
                                               for name, s in scales.items()]
    atomic_write(path, "".join(lines).encode("utf-8"), "calibration cache")
