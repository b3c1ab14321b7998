"""Debug knobs: the TENSORFORGE_* environment variables, read here and nowhere else."""
from __future__ import annotations

import os
from dataclasses import dataclass

DUMP_PASSES = "TENSORFORGE_DUMP_PASSES"  # DIR: the IR text after every pass, one file each
VERIFY_PASSES = "TENSORFORGE_VERIFY_PASSES"  # 1: ir.verify after every pass
PASS_STATS = "TENSORFORGE_PASS_STATS"  # 1: per-pass time, node counts, rule fires/declines at INFO
SERVE_NO_GRAPH = "TENSORFORGE_SERVE_NO_CUDA_GRAPH"  # 1: serving replicas / Triton instances run without CUDA graphs
SERVE_WARMUP = "TENSORFORGE_SERVE_WARMUP"  # all | pow2 | none: batch sizes a serving Runner runs once at start


@dataclass(frozen=True)
class Knobs:
    """The debug knobs in effect."""
    dump_passes: str | None = None
    verify_passes: bool = False
    pass_stats: bool = False
    serve_no_graph: bool = False
    serve_warmup: str | None = None


def _flag(environ, name: str) -> bool:
    return environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def knobs(environ=None) -> Knobs:
    """The knobs from `environ` (default os.environ), read at call time so a test can set them."""
    env = os.environ if environ is None else environ
    return Knobs(dump_passes=env.get(DUMP_PASSES) or None, verify_passes=_flag(env, VERIFY_PASSES),
                 pass_stats=_flag(env, PASS_STATS), serve_no_graph=_flag(env, SERVE_NO_GRAPH),
                 serve_warmup=env.get(SERVE_WARMUP, "").strip().lower() or None)
