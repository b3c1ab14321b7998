"""Device checks shared by the tactic families (candidates run for CPU and CUDA devices)."""
from __future__ import annotations


def is_cuda(device) -> bool:
    return getattr(device, "type", str(device)) == "cuda"


def capability(device) -> tuple:
    """(major, minor) of a CUDA device, (0, 0) elsewhere."""
    import torch
    if not is_cuda(device) or not torch.cuda.is_available():
        return (0, 0)
    return torch.cuda.get_device_capability(device)
