"""`tensorforge report`: one self-contained HTML profile report of an engine or of forgeexec's exports."""
from __future__ import annotations

import os

from ..errors import TensorforgeError


def add_parser(sub, shared_flags) -> None:
    """Declare the `report` subcommand (shared_flags: forgeexec build flags for ONNX/zoo inputs)."""
    from .forgeexec.flags import add_to_parser
    r = sub.add_parser("report", help="write an HTML profile report (layer table, plots, timeline)",
                       description="Profile an engine (or build an ONNX/zoo model first) on this machine, or read "
                       "forgeexec's --exportProfile/--exportLayerInfo/--exportTimes files, and write one "
                       "self-contained HTML page (no network needed to view it).")
    r.add_argument("model", nargs="?", help="engine file, ONNX file or zoo:NAME (omit with --profile/--layer-info)")
    r.add_argument("-o", "--output", default="report.html", help="HTML file to write (default report.html)")
    r.add_argument("--profile", help="forgeexec --exportProfile JSON")
    r.add_argument("--layer-info", help="forgeexec --exportLayerInfo JSON (--profilingVerbosity=detailed)")
    r.add_argument("--times", help="forgeexec --exportTimes JSON")
    r.add_argument("--gpu", default=None, help="device name for the peak table with exported files "
                   "(e.g. H200); default: unknown, floors n/a")
    r.add_argument("--iterations", type=int, default=20, help="profiled inferences (default 20)")
    r.add_argument("--device", default=None, help="cpu or cuda[:N] (default: cuda if available)")
    add_to_parser(r, shared_flags)


def _is_engine(path: str) -> bool:
    from ..runtime.format import MAGIC
    if not os.path.isfile(path):
        return False
    with open(path, "rb") as f:
        return f.read(len(MAGIC)) == MAGIC


def report(args) -> int:
    """Collect the data, write the page, print where it went."""
    from ..fileio import check_distinct
    from ..report import data as rdata
    from ..report import page
    check_distinct([("the input model", args.model), ("the --profile input", args.profile),
                    ("the --layer-info input", args.layer_info), ("the --times input", args.times)],
                   [("-o", args.output), ("--timingCacheFile", getattr(args, "timingCacheFile", None))])
    try:
        import matplotlib  # noqa: F401 - the plots need it; say how to get it
    except ImportError:
        raise TensorforgeError("the report needs matplotlib: pip install 'tensorforge[report]'") from None
    if args.model is None:
        if not (args.profile or args.layer_info):
            raise TensorforgeError("report needs an engine/ONNX/zoo model, or --profile and/or --layer-info")
        title = os.path.basename(args.profile or args.layer_info)
        data = rdata.from_exports(args.profile, args.layer_info, args.times, title, args.gpu or "n/a")
    else:
        from .report_engine import from_engine
        shapes = _shapes(args.shapes)
        engine = _engine(args)
        data = from_engine(engine, os.path.basename(args.model), shapes, max(1, args.iterations), args.cpuThreads)
    page.write(data, args.output)
    print(f"[I] Wrote {args.output}: {len(data.layers)} layers, {data.total_ms:.4f} ms per inference "
          f"on {data.device}")
    return 0


def _shapes(spec) -> dict:
    """--shapes as {name: dims}."""
    if not spec:
        return {}
    from ..errors import ShapeError
    from .forgeexec.shapes import UsageError, parse_shapes
    try:
        return dict(parse_shapes(spec))
    except UsageError as e:
        raise ShapeError(str(e)) from None


def _engine(args):
    """Load an engine file, or build an ONNX file / zoo model with the build flags."""
    import time

    from .compare_cmd import build_config, shapes_profiles
    if _is_engine(args.model):
        from ..runtime import Engine
        return Engine.load(args.model, device=args.device)
    from .. import Builder
    from ..frontend import load_model_proto
    if not args.model.startswith("zoo:") and not os.path.exists(args.model):
        raise TensorforgeError(f"no such file: {args.model}")
    cfg = build_config(args)
    proto = load_model_proto(args.model)
    cfg.profiles = shapes_profiles(proto, args.shapes)  # tune at the shapes the report profiles
    t0 = time.perf_counter()
    engine = Builder(cfg).build(proto)
    print(f"[I] Built {args.model} in {time.perf_counter() - t0:.2f} s: {len(engine.plan.layers)} layers")
    return engine
