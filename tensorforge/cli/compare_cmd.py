"""`tensorforge compare`: tensorforge vs ONNX Runtime (CPU) on the same inputs, per-output stats."""
from __future__ import annotations

import time

import numpy as np

from ..errors import TensorforgeError


def _stats(got: np.ndarray, ref: np.ndarray, atol: float, rtol: float) -> dict:
    """Error statistics with Polygraphy's rule: an element fails if abs > atol AND rel > rtol."""
    g = got.astype(np.float64)
    r = ref.astype(np.float64)
    absd = np.abs(g - r)
    reld = absd / (np.abs(r) + (r == 0) * 2.22e-16)
    finite = np.isfinite(absd)
    bad = ((absd > atol) & (reld > rtol)) | (np.isnan(g) != np.isnan(r))
    gf, rf = g.reshape(-1), r.reshape(-1)
    ok = np.isfinite(gf) & np.isfinite(rf)
    denom = np.linalg.norm(gf[ok]) * np.linalg.norm(rf[ok])
    cos = float(gf[ok] @ rf[ok] / denom) if denom > 0 else float(np.array_equal(gf[ok], rf[ok]))
    return {"max_abs": float(absd[finite].max()) if finite.any() else float("nan"),
            "mean_abs": float(absd[finite].mean()) if finite.any() else float("nan"),
            "max_rel": float(reld[finite].max()) if finite.any() else float("nan"),
            "cosine": cos, "nan": int(np.isnan(g).sum()), "inf": int(np.isinf(g).sum()),
            "ref_nan": int(np.isnan(r).sum()), "ref_inf": int(np.isinf(r).sum()),
            "failed": int(bad.sum()), "total": int(g.size)}


def compare(args) -> int:
    """Build, run both, print per-output stats; 0 when every output passes, 1 otherwise."""
    from .. import Builder
    from ..frontend import load_model_proto
    from ..testing import run_ort
    proto = load_model_proto(args.model)
    check_input_flags(proto, args)
    cfg = build_config(args)
    cfg.profiles = shapes_profiles(proto, args.shapes)
    t0 = time.perf_counter()
    engine = Builder(cfg).build(proto)
    print(f"[I] Built engine in {time.perf_counter() - t0:.2f} s: {len(engine.plan.layers)} layers on {engine.device}")
    feed = random_feed(engine, args)
    t0 = time.perf_counter()
    got = engine.create_execution_context().infer(feed)
    t_tf = time.perf_counter() - t0
    t0 = time.perf_counter()
    from ..quant import has_qdq
    quantized = has_qdq(proto) and args.atol is None and args.rtol is None
    ref_model = proto
    choice = engine.plan.meta.get("engine_choice") or {}
    if choice.get("chosen") == "fp16_form":  # the engine computes the model without its Q/DQ: compare with that
        from ..builder.fp16_form import fp16_form
        ref_model = fp16_form(proto)
        print(f"[I] The builder kept the FP16 engine without the Q/DQ ({choice.get('why', '')}); compared with "
              "ONNX Runtime running that model")
    ref = run_ort(ref_model, feed, basic=has_qdq(ref_model))  # Q/DQ: the fake-quant reference
    args.atol = 1e-4 if args.atol is None else args.atol
    args.rtol = 1e-4 if args.rtol is None else args.rtol
    t_ort = time.perf_counter() - t0
    print(f"[I] tensorforge: {t_tf * 1e3:.1f} ms | onnxruntime (CPU): {t_ort * 1e3:.1f} ms")
    all_ok = True
    for name, r in ref.items():
        g = got[name].detach().cpu()
        g = g.float().numpy() if g.is_floating_point() else g.numpy()
        if g.shape != r.shape:
            print(f"[E] FAILED | Output: '{name}' | shape {list(g.shape)} vs onnxruntime {list(r.shape)}")
            all_ok = False
            continue
        s = _stats(g, r, args.atol, args.rtol)
        ok = s["failed"] == 0 and s["nan"] == s["ref_nan"] and s["inf"] == s["ref_inf"]
        rule = f"atol={args.atol} rtol={args.rtol}"
        if quantized:
            from .compare_quant import MIN_COSINE, MIN_TOP1, verdict
            ok, rule = verdict(s, g, r, MIN_COSINE if args.min_cosine is None else args.min_cosine,
                               MIN_TOP1 if args.min_top1 is None else args.min_top1)
        all_ok &= ok
        print(f"[I] Output '{name}' {g.dtype}{list(g.shape)}: max_abs={s['max_abs']:.4g} "
              f"mean_abs={s['mean_abs']:.4g} max_rel={s['max_rel']:.4g} cosine={s['cosine']:.6f} "
              f"nan={s['nan']} inf={s['inf']} mismatched={s['failed']}/{s['total']}")
        print(f"[I] {'PASSED' if ok else 'FAILED'} | Output: '{name}' | {rule}")
    print(f"[I] {'PASSED' if all_ok else 'FAILED'} | tensorforge vs onnxruntime | {len(ref)} output(s)")
    return 0 if all_ok else 1


def _device(spec):
    """--device: None (cuda if available), N or cuda:N (a CUDA device, forgeexec's form), cuda or cpu."""
    if spec is None or spec in ("cpu", "cuda"):
        return spec
    n = spec.split(":", 1)[1] if spec.startswith("cuda:") else spec
    if not n.isdigit():
        raise TensorforgeError(f"--device must be N, cuda[:N] or cpu, got '{spec}'")
    return f"cuda:{n}"


def build_config(args):
    """The BuilderConfig of the build flags (forgeexec's meaning, BuilderConfig's defaults)."""
    import torch

    from .. import BuilderConfig
    from .forgeexec.build import precision_flags
    device = _device(args.device)
    dev = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    level = args.builderOptimizationLevel
    return BuilderConfig(**precision_flags(args, dev), tf32=not args.noTF32, strongly_typed=args.stronglyTyped,
                         opt_level=BuilderConfig.opt_level if level is None else level,
                         timing_cache=args.timingCacheFile, avg_timing=args.avgTiming, device=device)


def shapes_profiles(proto, spec) -> list:
    """[a profile with min = opt = max = --shapes] when --shapes gives every dynamic input, else []
    (the builder then tunes at dims = 1 and accepts any shape)."""
    from .. import OptimizationProfile
    from .forgeexec.api import model_inputs
    from .forgeexec.shapes import UsageError, parse_shapes
    try:
        shapes = parse_shapes(spec) if spec else {}
    except UsageError:
        return []  # reported with the inputs
    dynamic = {name: dims for name, _, dims in model_inputs(proto) if -1 in dims}
    if not dynamic or any(n not in shapes or len(shapes[n]) != len(d) for n, d in dynamic.items()):
        return []  # bad ranks are reported with the inputs
    prof = OptimizationProfile()
    for name in dynamic:
        prof.set_shape(name, shapes[name], shapes[name], shapes[name])
    return [prof]


def check_input_flags(proto, args) -> None:
    """--shapes / --loadInputs name the model's inputs, and the files exist, before any build."""
    from ..errors import ShapeError
    from ..fileio import regular_file
    from .forgeexec.shapes import UsageError, parse_name_files, parse_shapes
    try:
        shapes = parse_shapes(args.shapes) if args.shapes else {}
        files = parse_name_files(args.loadInputs) if getattr(args, "loadInputs", None) else {}
    except UsageError as e:
        raise ShapeError(str(e)) from None
    inits = {i.name for i in proto.graph.initializer}
    names = {i.name for i in proto.graph.input if i.name not in inits}
    for flag, given in (("--shapes", shapes), ("--loadInputs", files)):
        if set(given) - names:
            raise ShapeError(f"{flag} names unknown input(s): {', '.join(sorted(set(given) - names))} "
                             f"(the model's inputs: {', '.join(sorted(names))})")
    for path in list(files.values()) + ([args.load_inputs] if getattr(args, "load_inputs", None) else []):
        regular_file(path, "input file")


def random_feed(engine, args) -> dict:
    """Every input at its --shapes shape: from --loadInputs (raw, or .npy) or --load-inputs (.npz), else
    forgeexec's random values (valid integer ranges, masks 0/1, never zeros)."""
    import torch

    from ..errors import ShapeError
    from .forgeexec.api import zoo_value_ranges
    from .forgeexec.inputs import load_input, random_input
    from ..fileio import read_npy, read_npz
    from .forgeexec.shapes import UsageError, parse_name_files, parse_shapes
    try:  # the names and files were checked against the model before the build (check_input_flags)
        shapes = parse_shapes(args.shapes) if args.shapes else {}
        files = parse_name_files(args.loadInputs) if getattr(args, "loadInputs", None) else {}
    except UsageError as e:
        raise ShapeError(str(e)) from None
    npz = read_npz(args.load_inputs) if getattr(args, "load_inputs", None) else {}
    missing = [d.name for d in engine.inputs if npz and d.name not in npz and d.name not in files]
    if missing:
        raise TensorforgeError(f"{args.load_inputs} has no array for input(s) {', '.join(missing)}")
    ranges, rng, feed = zoo_value_ranges(args.model), np.random.default_rng(args.seed), {}
    for d in engine.inputs:
        shp = shapes.get(d.name)
        if d.name in files and files[d.name].endswith(".npy"):
            arr = read_npy(files[d.name])
        elif d.name in files:
            if shp is None and -1 in d.shape:
                raise ShapeError(f"input '{d.name}' has dynamic dims {list(d.shape)}: give its shape with --shapes "
                                 "to read the raw file")
            arr = load_input(d.name, d.dtype, tuple(shp or d.shape), files[d.name])
        elif d.name in npz:
            arr = npz[d.name]
        else:
            shp = shp or tuple(1 if s < 0 else s for s in d.shape)
            if len(shp) != len(d.shape):
                raise ShapeError(f"input '{d.name}': shape {list(shp)} has the wrong rank (expected {len(d.shape)})")
            arr = random_input(d.name, d.dtype, tuple(shp), ranges, rng)
        if isinstance(arr, torch.Tensor):
            arr = arr.float().numpy() if arr.dtype == torch.bfloat16 else arr.numpy()
        if shp is not None and tuple(arr.shape) != tuple(shp):
            raise ShapeError(f"input '{d.name}': loaded data has shape {list(arr.shape)}, --shapes says {list(shp)}")
        feed[d.name] = arr
    return feed
