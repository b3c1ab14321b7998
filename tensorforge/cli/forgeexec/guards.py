"""Checks before anything runs: no output flag may name an input file or another output; counts that
allocate per unit (streams) stay within what a machine can create."""
from __future__ import annotations

from .shapes import UsageError

# flag: upper bound (a count of streams or contexts created up front: 2**31 of them never finishes)
LIMITS = {"streams": 1024, "infStreams": 1024, "maxAuxStreams": 64, "avgTiming": 10**6}
OUTPUT_FLAGS = ("saveEngine", "exportTimes", "exportOutput", "exportProfile", "exportLayerInfo", "timingCacheFile",
                "quantReport")


def _inputs(opts) -> list[tuple[str, str]]:
    """(flag, path) of every file the command reads."""
    out = []
    if opts.onnx and not opts.onnx.startswith("zoo:"):
        out.append(("--onnx", opts.onnx))
    if opts.loadEngine:
        out.append(("--loadEngine", opts.loadEngine))
    if getattr(opts, "calib", None):
        out.append(("--calib", opts.calib))
    for name, path in (getattr(opts, "load_inputs", None) or {}).items():
        out.append((f"--loadInputs ({name})", path))
    return out


def check_paths(opts) -> None:
    """UsageError when an output path is an input path (it would be destroyed) or two outputs collide."""
    from tensorforge.fileio import check_distinct
    outs = [(f"--{f}", getattr(opts, f, None)) for f in OUTPUT_FLAGS]
    kept = []  # with --noBuilderCache the timing cache is not written, but the file is still the user's: no other
    # output may go there (session 13's fuzz, seed 50: --exportLayerInfo onto it replaced a file the user kept)
    if getattr(opts, "noBuilderCache", False) and getattr(opts, "timingCacheFile", None):
        kept = [("the timing cache file of --timingCacheFile", opts.timingCacheFile)]
    outs = [(f, p) for f, p in outs if p and not (f == "--timingCacheFile" and kept)]
    check_distinct([(f"the input file of {f}", p) for f, p in _inputs(opts)] + kept, outs, UsageError)


def check_limits(opts) -> None:
    """UsageError for a count over its upper bound."""
    for flag, hi in LIMITS.items():
        v = getattr(opts, flag, None)
        if isinstance(v, int) and v > hi:
            raise UsageError(f"--{flag}={v} is over the limit of {hi}")
