"""The aten tactic source: layers run through torch ops (cuBLAS/cuBLASLt, cuDNN, SDPA on CUDA; ATen
CPU kernels on CPU).

Tactic "reference" (module reference) runs the op's reference implementation; the other families
(attention, concat, control, conv, gemm_lt, gemm, quant, scaled_mm, scaled_lt) register with kernels.registry.tactic_family.
Their candidates functions read the layer's concrete shapes from the LayerShapes they are given; without shapes
only the reference is offered. A tactic may carry a top-level "level" key: the lowest builder
optimization level that considers it (default: its family's level, 1).
"""
from __future__ import annotations



def tactic(name: str, level: int = 1, **params) -> dict:
    """A tactic dict of this source (level: lowest optimization level that times it)."""
    t = {"source": "aten", "name": name, "params": params}
    if level > 1:
        t["level"] = level
    return t


# imported in candidates order (the order of the families' tactics in every candidates list)
from . import reference, attention, concat, control, conv, gemm_lt, gemm, quant, scaled_mm, scaled_lt  # noqa: E402,F401,I001
