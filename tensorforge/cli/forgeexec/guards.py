"""Checks before anything runs: no output flag may name an input file or another output; counts that
allocate per unit (streams) stay within what a machine can create."""
from __future__ import annotations

from .shapes import UsageError

# flag: upper bound (a count of streams or contexts created up front: 2**31 of them never finishes)
LIMITS = {"streams": 1024, "infStreams": 1024, "maxAuxStreams": 64, "avgTiming": 10**6}
OUTPUT_FLAGS = ("saveEngine", "exportTimes", "exportOutput", "exportProfile", "exportLayerInfo", "timingCacheFile")


def _inputs(opts) -> list[tuple[str, str]]:
    """(flag, path) of every file the command reads."""
    out = []
    if opts.onnx and not opts.onnx.startswith("zoo:"):
        out.append(("--onnx", opts.onnx))
    if opts.loadEngine:
        out.append(("--loadEngine", opts.loadEngine))
    for name, path in (getattr(opts, "load_inputs", None) or {}).items():
        out.append((f"--loadInputs ({name})", path))
    return out


def check_paths(opts) -> None:
    """UsageError when an output path is an input path (it would be destroyed) or two outputs collide."""
    from tensorforge.fileio import same_file
    outs = [(f"--{f}", getattr(opts, f, None)) for f in OUTPUT_FLAGS]
    outs = [(f, p) for f, p in outs if p and not (f == "--timingCacheFile" and getattr(opts, "noBuilderCache", False))]
    for flag, path in outs:
        for iflag, ipath in _inputs(opts):
            if same_file(path, ipath):
                raise UsageError(f"{flag}={path} is the input file given by {iflag}; refusing to overwrite it")
    for i, (flag, path) in enumerate(outs):
        for flag2, path2 in outs[i + 1:]:
            if same_file(path, path2) and path not in ("/dev/null", "/dev/stdout", "/dev/stderr"):
                raise UsageError(f"{flag} and {flag2} name the same file ({path}); give each output its own file")


def check_limits(opts) -> None:
    """UsageError for a count over its upper bound."""
    for flag, hi in LIMITS.items():
        v = getattr(opts, flag, None)
        if isinstance(v, int) and v > hi:
            raise UsageError(f"--{flag}={v} is over the limit of {hi}")
