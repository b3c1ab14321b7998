"""Cheap up-front memory estimates: refuse shapes that cannot fit before allocating anything."""
from __future__ import annotations

import math

from .. import dtypes
from ..errors import TensorforgeError


def available_bytes(device) -> int | None:
    """Memory a build or run may use on device: total GPU memory, or the host's MemAvailable."""
    import torch
    if getattr(device, "type", str(device)) == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.mem_get_info(device)[1])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def tensor_bytes(shape, dtype: str) -> int:
    """Exact byte size (Python ints: no overflow)."""
    return math.prod(int(d) for d in shape) * dtypes.itemsize(dtype)


def check_fits(needed: int, device, what: str) -> None:
    """TensorforgeError when `needed` bytes exceed what the device has."""
    have = available_bytes(device)
    if have is not None and needed > have:
        raise TensorforgeError(f"{what} needs {needed / 2**30:.3g} GiB but the "
                               f"{'GPU' if getattr(device, 'type', '') == 'cuda' else 'host'} has "
                               f"{have / 2**30:.3g} GiB available; use smaller shapes")
