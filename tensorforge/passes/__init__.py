"""Graph passes: pure Graph -> Graph functions run in the order of PIPELINE.

Cleanup (folding, identities, CSE, DCE) comes first; then pattern recognitions that need the raw
ONNX ops (activations, norms, attention, reductions); then fusions into anchors (conv / gemm
weights, epilogues); pointwise fusion takes whatever elementwise work is left, and a second
epilogue round absorbs pointwise trees that read an anchor's output more than once (SiLU)."""
from __future__ import annotations

import logging

from ..ir import Graph, verify
from .cse import cse
from .dce import dce
from .fold_constants import fold_constants
from .fuse_activation import fuse_activations
from .fuse_attention import fuse_attention
from .fuse_conv import fuse_conv
from .fuse_epilogue import fuse_epilogue
from .fuse_gemm import fuse_gemm
from .fuse_norm import fuse_norms
from .fuse_pointwise import fuse_pointwise
from .fuse_reduce import fuse_reductions
from .fuse_scale import fuse_scale
from .identity import eliminate_identity
from .merge_gemm import merge_gemm
from .patchify import patchify_convs

log = logging.getLogger("tensorforge")

# The optimizer pipeline, in order. Each entry is a pure Graph -> Graph function.
PIPELINE = [fold_constants, eliminate_identity, cse, dce, merge_gemm, fuse_activations, fuse_norms, fuse_attention,
            cse, fuse_reductions, fuse_conv, patchify_convs, fuse_gemm, fuse_epilogue, fuse_scale, fuse_pointwise,
            fuse_epilogue, cse, dce]


# Cleanup only (BuilderConfig(fusion=False)): the unfused baseline, one layer per remaining ONNX node.
CLEANUP = [fold_constants, eliminate_identity, cse, dce]


def run_pipeline(g: Graph, pipeline=None, check: bool = False) -> Graph:
    """Run passes in order; with check=True verify the graph after each pass."""
    for p in (PIPELINE if pipeline is None else pipeline):
        g = p(g)
        if check:
            verify(g)
    return g


__all__ = ["PIPELINE", "CLEANUP", "run_pipeline", "fold_constants", "dce", "cse", "eliminate_identity",
           "fuse_activations", "fuse_norms", "fuse_attention", "fuse_reductions", "fuse_conv",
           "fuse_gemm", "fuse_epilogue", "fuse_scale", "fuse_pointwise", "merge_gemm", "patchify_convs"]
