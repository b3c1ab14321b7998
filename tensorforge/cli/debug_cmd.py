"""`tensorforge debug precision MODEL`: the fewest layers to keep in higher precision for a tolerance."""
from __future__ import annotations

import time

# forgeexec's build flags that debug precision takes (same names and meaning)
BUILD_FLAGS = ("--shapes", "--loadInputs", "--fp16", "--bf16", "--int8", "--fp8", "--best", "--noTF32",
               "--builderOptimizationLevel", "--timingCacheFile", "--avgTiming")


def add_parser(sub) -> None:
    """Declare `debug` and its `precision` subcommand."""
    from .forgeexec.flags import add_to_parser
    d = sub.add_parser("debug", help="debugging tools (precision)")
    dsub = d.add_subparsers(dest="debug_cmd", metavar="TOOL", required=True)
    p = dsub.add_parser("precision", help="find the fewest layers to keep in higher precision for a tolerance",
                        description="Build MODEL in reduced precision (--fp16 unless another precision flag is "
                        "given), compare its outputs with ONNX Runtime (CPU), and bisect over the layers in "
                        "topological order for the smallest set that must stay in --keep precision; prints "
                        "the --layerPrecisions spec that achieves it.")
    p.add_argument("model", help="ONNX file or zoo:NAME")
    p.add_argument("--atol", type=float, default=1e-2)
    p.add_argument("--rtol", type=float, default=1e-2)
    p.add_argument("--keep", choices=("fp32", "fp16"), default="fp32",
                   help="precision the found layers keep (fp16: for int8/fp8 engines; default fp32)")
    p.add_argument("--seed", type=int, default=1, help="seed of the random inputs")
    p.add_argument("--device", default=None, help="cpu or cuda[:N] (default: cuda if available)")
    p.add_argument("-v", "--verbose", action="store_true", help="log every trial build")
    add_to_parser(p, BUILD_FLAGS)
    p.set_defaults(stronglyTyped=False)  # a strongly typed network has no precision to choose


def debug(args) -> int:
    """Run the search; 0 when a set was found (possibly empty), 1 when none meets the tolerance."""
    from .. import Builder
    from ..debug.precision import PrecisionSearch, layer_precisions_spec
    from ..errors import TensorforgeError
    from ..frontend import load_model_proto
    from ..testing import run_ort
    from .compare_cmd import build_config, check_input_flags, random_feed, shapes_profiles
    if not any(getattr(args, f) for f in ("fp16", "bf16", "int8", "fp8", "best")):
        args.fp16 = True
    proto = load_model_proto(args.model)
    check_input_flags(proto, args)
    cfg = build_config(args)
    cfg.profiles = shapes_profiles(proto, args.shapes)
    # the search is over the layers' precisions: no whole-engine FP16 form in place of the engine (builder.fp16_form)
    cfg.fp16_engine_check = "never"
    feed = random_feed(Builder(cfg).build(proto), args)
    ref = run_ort(proto, feed)
    search = PrecisionSearch(proto, cfg, feed, ref, args.atol, args.rtol, args.keep)
    t0 = time.perf_counter()
    try:
        kept, names, n = search.run()
    except TensorforgeError as e:
        print(f"[E] {e}")
        return 1
    print(f"[I] {len(search.trials)} trial builds in {time.perf_counter() - t0:.1f} s over {n} layers below "
          f"{args.keep} "
          f"(atol={args.atol}, rtol={args.rtol})")
    if not kept:
        print(f"[I] PASSED: no layer needs {args.keep}; the engine meets the tolerance as built")
        return 0
    print(f"[I] {len(kept)} of {n} layer(s) must stay in {args.keep}:")
    for k in kept:
        print(f"[I]   {names.get(k, k)}")
    print(f"[I] {layer_precisions_spec(kept, args.keep)}")
    return 0
