"""Resize layers of the garden detectors before / after fuse_upsample (CPU; nothing is timed).

python bench/resize_fusion.py [--fp16] [MODEL ...]: per model at its GPU benchmark shape, every Resize
layer of the build without fuse_upsample (mode, coordinate mode, shapes, reader), whether it fuses,
the layer count with and without the pass, and the activation bytes the fusion stops writing and
reading back (2 x the upsampled tensor per fused Resize; the small input is read either way)."""
from __future__ import annotations

import argparse
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorforge as tf  # noqa: E402
from tensorforge import passes  # noqa: E402
from tensorforge.runtime.binding import bind_symbols  # noqa: E402
from tensorforge.runtime.shapes import eval_shape  # noqa: E402
from tests.garden import fetch  # noqa: E402

# model -> GPU benchmark input shape (docs/model_garden_gpu.md)
MODELS = {"ppocrv4_det": (1, 3, 640, 640), "ppocrv5_det": (1, 3, 640, 640), "ddddocr_det": (1, 3, 416, 416),
          "nudenet_320n": (1, 3, 320, 320)}


def build(path, name, shape, fuse=True):
    """A CPU level-0 engine with the input pinned to `shape` (fuse_upsample left out if not fuse)."""
    prof = tf.OptimizationProfile()
    prof.set_shape(name, shape, shape, shape)
    old = list(passes.PIPELINE)
    if not fuse:
        passes.PIPELINE[:] = [p for p in old if p is not passes.fuse_upsample]
    try:
        return tf.Builder(tf.BuilderConfig(opt_level=0, device="cpu", profiles=[prof])).build(path)
    finally:
        passes.PIPELINE[:] = old


def report(model, shape, elem):
    entry = fetch.model_by_name(model)
    path = fetch.model_path(entry)
    name = next(iter(entry["inputs"]))
    base, fused = build(path, name, shape, fuse=False), build(path, name, shape)
    plan = base.plan
    env = bind_symbols(plan, {name: shape})
    readers = {}
    for lay in plan.layers:
        for t in lay.inputs:
            if t:
                readers.setdefault(t, []).append(lay)
    kept = {lay.name for lay in fused.plan.layers if lay.type == "Resize"}
    lines, saved = [], 0
    for lay in plan.layers:
        if lay.type not in ("Resize", "Upsample"):
            continue
        src, out = (eval_shape(plan.tensors[t].shape, env) for t in (lay.inputs[0], lay.outputs[0]))
        nbytes = math.prod(out) * elem
        gone = lay.name not in kept
        saved += 2 * nbytes if gone else 0
        a = lay.attrs
        lines.append(f"| {model} | {lay.name} | {a.get('mode', 'nearest')}, {a.get('coordinate_transformation_mode', '-')}"
                     f", {a.get('nearest_mode', '-')} | {list(src)} -> {list(out)} | "
                     f"{', '.join(r.type for r in readers.get(lay.outputs[0], []))} | {'fused' if gone else 'kept'} | "
                     f"{nbytes / 2**20:.2f} |")
    summary = (f"{model} {list(shape)}: {len(plan.layers)} -> {len(fused.plan.layers)} layers, "
               f"{len(lines)} Resize ({len(lines) - len(kept)} fused), {saved / 2**20:.2f} MiB of activation "
               f"traffic removed per inference")
    return lines, summary


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", default=list(MODELS))
    ap.add_argument("--fp16", action="store_true", help="count 2-byte activations (else 4)")
    args = ap.parse_args(argv)
    elem = 2 if args.fp16 else 4
    print(f"| model | Resize layer | mode | input -> output | read by | fusion | output MiB ({'fp16' if args.fp16 else 'fp32'}) |")
    print("|---|---|---|---|---|---|---|")
    summaries = []
    for m in args.models:
        try:
            lines, s = report(m, MODELS[m], elem)
        except fetch.GardenUnavailable as e:
            lines, s = [], f"{m}: not available ({e})"
        print("\n".join(lines), flush=True)
        summaries.append(s)
    print()
    print("\n".join(summaries))


if __name__ == "__main__":
    main()
