"""TensorRT calibration caches (text): a header line `TRT-<version>-<Algorithm>`, then one line
`tensor: <8 hex digits>` per tensor, the big-endian IEEE-754 float32 scale (amax = scale · 127)."""
from __future__ import annotations

import struct

from ..errors import TensorforgeError


def read_cache(path: str) -> dict:
    """{tensor name: scale} of a TensorRT calibration cache file."""
    try:
        lines = open(path).read().splitlines()
    except OSError as e:
        raise TensorforgeError(f"{path}: cannot read the calibration cache ({e.strerror})") from None
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
    """Write {tensor name: scale} as a TensorRT calibration cache."""
    with open(path, "w") as f:
        f.write(f"TRT-{version}-{algorithm}\n")
        for name, s in scales.items():
            f.write(f"{name}: {struct.pack('>f', float(s)).hex()}\n")
