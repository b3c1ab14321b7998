"""The docs-ready markdown of bench/garden_gpu.py: one row per model, FP16 and TF32 side by side."""
from __future__ import annotations

import datetime
import platform


def environment(args, seconds: float) -> dict:
    """Where and how the run happened (for the table's header and the JSON)."""
    import torch

    import tensorforge
    env = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "host": platform.node(), "device": args.device, "torch": torch.__version__,
           "tensorforge": tensorforge.__version__, "opt_level": args.opt_level, "jobs": args.jobs,
           "shapes": "manifest test shapes" if args.test_shapes else "GPU benchmark shapes",
           "seconds": round(seconds, 1)}
    if args.device == "cuda" and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
    for mod in ("triton", "onnxruntime"):
        try:
            env[mod] = __import__(mod).__version__
        except ImportError:
            env[mod] = "absent"
    return env


def _shapes(row: dict) -> str:
    return ", ".join(f"{k} {'x'.join(map(str, v)) or 'scalar'}" for k, v in (row.get("shapes") or {}).items())


def _cells(row: dict | None) -> list[str]:
    """build s, GPU ms, cosine, top-1 of one precision."""
    if row is None:
        return ["-", "-", "-", "-"]
    if "skipped" in row:
        return [f"not run: {row['skipped']}", "-", "-", "-"]
    if "error" in row:
        return [f"fails: {row['error'][:90]}", "-", "-", "-"]
    ms = f"{row['gpu_ms']:.3f}" if "gpu_ms" in row else ("timing failed" if "time_error" in row else "-")
    if "gpu_ms" in row and row.get("timing") != "CUDA graph":
        ms += f" ({row['timing']})"
    top1 = "-" if row.get("top1") is None else f"{row['top1']:.0%}"
    return [f"{row['build_s']:.1f}", ms, f"{row['cosine']:.6f}", top1]


def verdict(rows: list) -> str:
    """ok / BELOW (a precision misses the bar) / fails (does not build or run) for one model."""
    if any("error" in r for r in rows):
        return "fails"
    below = [r for r in rows if r.get("ok") is False]
    if below:
        return "BELOW: " + ", ".join(f"{r['precision']} cos {r['cosine']:.4f}" + (
            f" top-1 {r['top1']:.0%}" if r.get("top1") is not None else "") for r in below)
    if any("skipped" in r for r in rows):
        return "not run" if all("skipped" in r for r in rows) else "partly run"
    return "ok"


def markdown(rows: list, env: dict, missing: list, min_cos: float) -> str:
    """The table (FP16 | TF32 per model) with the run's environment and the models not present."""
    names = list(dict.fromkeys(r["model"] for r in rows))
    lines = [f"Garden on {env.get('gpu', env['device'])}, {env['date']}: tensorforge {env['tensorforge']}, "
             f"torch {env['torch']}, triton {env['triton']}, ONNX Runtime {env['onnxruntime']} (the reference: "
             f"CPU FP32); builder level {env['opt_level']}, {env['shapes']}, {env['jobs']} build(s) at a time"
             + (" (tactic timing under contention)" if env["jobs"] > 1 else "") + f"; whole run {env['seconds']} s.",
             f"Bar: cosine >= {min_cos} and full classifier top-1 agreement. GPU ms: median per inference, CUDA "
             "graph replay (CUDA events) unless said otherwise (then host wall clock per synchronized inference).",
             "",
             "| model | class | inputs | FP16 build s | FP16 GPU ms | FP16 cosine | FP16 top-1 | TF32 build s "
             "| TF32 GPU ms | TF32 cosine | TF32 top-1 | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for n in names:
        mine = [r for r in rows if r["model"] == n]
        by = {r["precision"]: r for r in mine}
        first = mine[0]
        lines.append("| " + " | ".join([n, first.get("class", "-"), _shapes(first)] + _cells(by.get("fp16"))
                                       + _cells(by.get("tf32")) + [verdict(mine)]) + " |")
    others = sorted({r["precision"] for r in rows} - {"fp16", "tf32"})
    if others:
        lines.append(f"\n(other precisions in the JSON: {', '.join(others)})")
    if missing:
        lines += ["", "Not on this machine (not carried):"] + [f"- {m}" for m in missing]
    return "\n".join(lines) + "\n"
