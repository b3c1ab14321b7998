"""`tensorforge refit ENGINE MODEL.onnx -o OUT`: fill or replace a refittable engine's weights."""
from __future__ import annotations

import time


def add_parser(sub) -> None:
    r = sub.add_parser("refit", help="refit a refittable or weight-stripped engine with an ONNX model's weights")
    r.add_argument("engine", help="engine file built with --refit or --stripWeights")
    r.add_argument("model", help="ONNX file or zoo:NAME with the same graph (its weights are used)")
    r.add_argument("-o", "--output", required=True, help="where to write the refitted engine")
    r.add_argument("--device", default=None, help="cpu or cuda[:N] (default: the engine's device)")
    r.add_argument("-v", "--verbose", action="store_true")


def refit(args) -> int:
    """Load, refit from the model, save; prints one summary line."""
    from ..builder.refit import Refitter
    from ..fileio import check_distinct
    from ..runtime import Engine
    check_distinct([("the input engine", args.engine), ("the input model", args.model)], [("-o", args.output)])
    engine = Engine.load(args.engine, device=args.device)
    r = Refitter(engine)
    r.set_weights_from(args.model)
    t0 = time.perf_counter()
    r.refit()
    dt = time.perf_counter() - t0
    engine.save(args.output)
    print(f"refitted {len(r.get_all())} weights in {dt:.3f} s -> {args.output}")
    return 0
