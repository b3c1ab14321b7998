"""`tensorforge compare`: tensorforge vs ONNX Runtime (CPU) on the same inputs, per-output stats."""
from __future__ import annotations

import os
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
    cfg = build_config(args)
    t0 = time.perf_counter()
    engine = Builder(cfg).build(proto)
    print(f"[I] Built engine in {time.perf_counter() - t0:.2f} s: {len(engine.plan.layers)} layers on {engine.device}")
    if args.load_inputs:
        if not os.path.exists(args.load_inputs):
            raise TensorforgeError(f"inputs file not found: {args.load_inputs}")
        try:
            data = dict(np.load(args.load_inputs))
        except Exception as e:
            raise TensorforgeError(f"cannot read {args.load_inputs} as .npz ({type(e).__name__})") from None
        missing = [d.name for d in engine.inputs if d.name not in data]
        if missing:
            raise TensorforgeError(f"{args.load_inputs} has no array for input(s) {', '.join(missing)}")
        feed = {d.name: data[d.name] for d in engine.inputs}
    else:
        feed = _random_feed(engine, args)
    t0 = time.perf_counter()
    got = engine.create_execution_context().infer(feed)
    t_tf = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = run_ort(proto, feed)
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
        all_ok &= ok
        print(f"[I] Output '{name}' {g.dtype}{list(g.shape)}: max_abs={s['max_abs']:.4g} "
              f"mean_abs={s['mean_abs']:.4g} max_rel={s['max_rel']:.4g} cosine={s['cosine']:.6f} "
              f"nan={s['nan']} inf={s['inf']} mismatched={s['failed']}/{s['total']}")
        print(f"[I] {'PASSED' if ok else 'FAILED'} | Output: '{name}' | atol={args.atol} rtol={args.rtol}")
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


def _random_feed(engine, args) -> dict:
    """forgeexec's random inputs (valid integer ranges, masks 0/1, never zeros) at --shapes."""
    from ..errors import ShapeError
    from .forgeexec.api import zoo_value_ranges
    from .forgeexec.inputs import random_input
    from .forgeexec.shapes import UsageError, parse_shapes
    try:
        shapes = parse_shapes(args.shapes) if args.shapes else {}
    except UsageError as e:
        raise ShapeError(str(e)) from None
    unknown = set(shapes) - {d.name for d in engine.inputs}
    if unknown:
        raise ShapeError(f"--shapes names unknown input(s): {', '.join(sorted(unknown))}")
    ranges, rng, feed = zoo_value_ranges(args.model), np.random.default_rng(args.seed), {}
    for d in engine.inputs:
        shp = shapes.get(d.name, tuple(1 if s < 0 else s for s in d.shape))
        if len(shp) != len(d.shape):
            raise ShapeError(f"input '{d.name}': shape {list(shp)} has the wrong rank (expected {len(d.shape)})")
        t = random_input(d.name, d.dtype, tuple(shp), ranges, rng)
        feed[d.name] = t.float().numpy() if t.dtype == __import__("torch").bfloat16 else t.numpy()
    return feed
