"""Graph passes: pure Graph -> Graph functions run in the order of PIPELINE.

Cleanup (folding, identities, CSE, DCE) comes first; then pattern recognitions that need the raw
ONNX ops (activations, norms, attention, reductions); then fusions into anchors (conv / gemm
weights, epilogues); pointwise fusion takes whatever elementwise work is left, a second
epilogue round absorbs pointwise trees that read an anchor's output more than once (SiLU), and
nearest integer upsamples become indexed inputs of the pointwise layers that read them."""
from __future__ import annotations

import logging
import os

from .. import env
from ..ir import Graph, GraphInvariantError, verify
from .contrib_ops import contrib_to_onnx
from .control_flow import cleanup_subgraphs, fold_if, optimize_subgraphs
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
from .fuse_se import fuse_se
from .fuse_upsample import fuse_upsample
from .identity import eliminate_identity
from .instrument import PipelineStats
from .merge_gemm import merge_gemm
from .norm_prologue import norm_prologues
from .patchify import patchify_convs
from .quant import (quant_attention_out, quant_canonicalize, quant_fuse, quant_inline_operands, quant_lower_pairs,
                    quant_lower_rest, quant_propagate, quant_residual, quant_skip_norm, quant_unfold_weights)

log = logging.getLogger("tensorforge")

# The optimizer pipeline, in order. Each entry is a pure Graph -> Graph function.
# The quant_* passes act on Q/DQ graphs only (passes/quant: propagate Q/DQ, fuse quantized layers,
# lower the Q/DQ left into pointwise expressions that the epilogue/pointwise fusions absorb).
PIPELINE = [contrib_to_onnx, fold_if, quant_canonicalize, fold_constants, eliminate_identity, cse, dce,
            quant_propagate, quant_fuse, quant_unfold_weights, quant_lower_pairs, merge_gemm, fuse_activations,
            fuse_norms, fuse_attention, cse, fuse_reductions, fuse_conv, fuse_se, patchify_convs, fuse_gemm,
            fuse_epilogue, quant_residual, quant_attention_out, quant_lower_rest, fuse_scale, fuse_pointwise,
            fuse_epilogue, quant_inline_operands, quant_skip_norm, norm_prologues, fuse_upsample, cse,
            optimize_subgraphs, dce]


# Cleanup only (BuilderConfig(fusion=False)): the unfused baseline, one layer per remaining ONNX node.
CLEANUP = [fold_if, fold_constants, eliminate_identity, cse, cleanup_subgraphs, dce]


def run_pipeline(g: Graph, pipeline=None, check: bool = False, stats: PipelineStats | None = None) -> Graph:
    """Run passes in order, recording each pass's time, node counts and rule outcomes in `stats`.

    check=True (or TENSORFORGE_VERIFY_PASSES=1) verifies the graph after each pass;
    TENSORFORGE_DUMP_PASSES=DIR writes the IR text before the first and after every pass to DIR;
    the summary is logged at DEBUG (forgeexec --verbose), at INFO with TENSORFORGE_PASS_STATS=1."""
    knobs = env.knobs()
    check = check or knobs.verify_passes
    stats = PipelineStats() if stats is None else stats
    seq = list(PIPELINE if pipeline is None else pipeline)
    dump = _dumper(knobs.dump_passes)
    dump(0, "input", g)
    for i, p in enumerate(seq, 1):
        name = getattr(p, "__name__", type(p).__name__)
        with stats.record(name, g) as rec:
            g = p(g)
        rec.nodes_after = len(g.nodes)
        dump(i, name, g)
        if check:
            try:
                verify(g)
            except GraphInvariantError as e:
                raise GraphInvariantError(f"after pass {i} ({name}): {e}") from None
    level = logging.INFO if knobs.pass_stats else logging.DEBUG
    if log.isEnabledFor(level):
        log.log(level, stats.format())
    return g


def _dumper(folder: str | None):
    """dump(i, name, g): writes DIR/NN_name.txt (a no-op without a folder)."""
    if not folder:
        return lambda i, name, g: None
    os.makedirs(folder, exist_ok=True)

    def dump(i, name, g):
        with open(os.path.join(folder, f"{i:02d}_{name}.txt"), "w") as f:
            f.write(g.dump() + "\n")
    return dump


__all__ = ["PIPELINE", "CLEANUP", "run_pipeline", "PipelineStats", "fold_constants", "dce", "cse", "eliminate_identity",
           "fuse_activations", "fuse_norms", "fuse_attention", "fuse_reductions", "fuse_conv",
           "fuse_gemm", "fuse_epilogue", "fuse_scale", "fuse_se", "fuse_pointwise", "fuse_upsample", "merge_gemm",
           "patchify_convs", "norm_prologues",
           "contrib_to_onnx", "fold_if", "optimize_subgraphs", "cleanup_subgraphs"]
