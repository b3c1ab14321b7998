"""Peak dense throughput and memory bandwidth of known GPUs (the floors a layer is measured against)."""
from __future__ import annotations

from dataclasses import dataclass

TERA = 1e12


@dataclass(frozen=True)
class Peaks:
    """Dense tensor-core peaks (FLOP/s) per compute type and HBM bandwidth (B/s) of one GPU."""

    name: str
    flops: dict  # "FP16" / "BF16" / "FP8" / "Int8" / "TF32" / "FP32" -> FLOP/s
    bandwidth: float
    note: str = ""


_HOPPER = {"FP16": 989 * TERA, "BF16": 989 * TERA, "FP8": 1979 * TERA, "Int8": 1979 * TERA,
           "TF32": 494.5 * TERA, "FP32": 67 * TERA}
# H200/H100 values from shared/PERFORMANCE.md (dense, SXM); H100 SXM HBM3 is 3.35 TB/s
TABLE = (
    Peaks("H200", _HOPPER, 4.8 * TERA, "SXM; dense tensor peaks"),
    Peaks("H100", _HOPPER, 3.35 * TERA, "SXM values; PCIe parts are lower"),
)


def lookup(device_name: str | None) -> Peaks | None:
    """The peaks of a device by name (substring match, e.g. 'NVIDIA H200'), None when unknown or CPU."""
    if not device_name:
        return None
    up = device_name.upper()
    return next((p for p in TABLE if p.name in up), None)


def compute_peak(peaks: Peaks, precision: str, tf32: bool = True) -> float:
    """The FLOP/s peak that applies to a layer computing in `precision` (FP32 math uses TF32 when on)."""
    if precision == "FP32" and tf32:
        precision = "TF32"
    return peaks.flops.get(precision, peaks.flops["FP32"])
