"""GPU benchmark: tensorforge (FP16, TF32) vs torch eager, eager + CUDA graph and torch.compile
(max-autotune) on ResNet-50, ViT-B/16 and BERT-base, in one process, on identical inputs.

tensorforge runs the zoo model (zoo:NAME, checked against ONNX Runtime CPU) and the ONNX export of
the torch architecture the peers run (checked against eager torch FP32). Time = median over
back-to-back CUDA-graph replays (CUDA events) after warm-up. Prints one markdown table and appends
it to BENCHMARKS.md. Runs offline (random weights, nothing downloaded).

  python bench/compare.py [--cases resnet50_bs4,bert_base_bs1] [--quick] [--no-compile] [--out r.json]
"""
from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench import peers  # noqa: E402

CASES = {"resnet50_bs4": ("resnet50", 4), "resnet50_bs128": ("resnet50", 128), "vit_b16_bs32": ("vit_b16", 32),
         "bert_base_bs1": ("bert_base", 1), "bert_base_bs32": ("bert_base", 32)}
GFLOP = {"resnet50": 8.18, "vit_b16": 35.1, "bert_base": 22.3}  # per image / per 128-token sequence
PEAK_TFLOPS = 989.0  # H100/H200 dense FP16
REF_ROWS = 4  # reference outputs are compared on the first rows of the batch


def tf_engine(model, feeds: dict, precision: str, cache):
    """Build, bind, capture in a CUDA graph; returns (replay fn, first output, build s, meta)."""
    import tensorforge as tf
    prof = tf.OptimizationProfile()
    for n, v in feeds.items():
        prof.set_shape(n, v.shape, v.shape, v.shape)
    cfg = tf.BuilderConfig(device="cuda", fp16=precision == "fp16", tf32=precision != "fp32",
                           profiles=[prof], timing_cache=cache)
    t0 = time.perf_counter()
    eng = tf.Builder(cfg).build(model)
    build_s = time.perf_counter() - t0
    ctx = eng.create_execution_context()
    first = ctx.infer(feeds)  # validates every layer once, gives output shapes
    replay, outs = peers.engine_graph(ctx, feeds, first)
    meta = {"layers": len(eng.plan.layers), "tactics": eng.plan.meta.get("tactic_selection", {}),
            "precisions": sorted({lay.precision for lay in eng.plan.layers})}
    with tempfile.TemporaryDirectory() as d:  # engine file size, and load + first inference time
        path = os.path.join(d, "e.engine")
        eng.save(path)
        meta["engine_mib"] = os.path.getsize(path) / 2**20
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        loaded = tf.Engine.load(path)
        meta["load_s"] = time.perf_counter() - t0
        lctx = loaded.create_execution_context()
        lctx.infer(feeds)
        torch.cuda.synchronize()
        meta["load_to_first_output_s"] = time.perf_counter() - t0
        del loaded, lctx
    if cache:  # a second build with the warm timing cache: same tactics, no timing
        t0 = time.perf_counter()
        again = tf.Builder(cfg).build(model)
        meta["warm_build_s"] = time.perf_counter() - t0
        meta["same_tactics"] = [lay.tactic for lay in again.plan.layers] == [lay.tactic for lay in eng.plan.layers]
    return replay, outs[eng.plan.outputs[0]], build_s, meta


def zoo_reference(name, feeds):
    """ONNX Runtime CPU outputs of the zoo model on the first REF_ROWS rows."""
    from tensorforge import zoo
    from tensorforge.testing import run_ort
    small = {k: v[:REF_ROWS].cpu().numpy() for k, v in feeds.items()}
    model = zoo.get_model(name)
    return run_ort(model, small)[model.graph.output[0].name]


def row(case, runner, prec, ms, batch, arch, build_s=None, err=(float("nan"), float("nan")), **extra):
    floor_ms = GFLOP[arch] * 1e9 * batch / (PEAK_TFLOPS * 1e12) * 1e3
    r = {"case": case, "runner": runner, "precision": prec, "ms": ms, "throughput": batch / ms * 1e3 if ms else None,
         "floor_fraction": floor_ms / ms if ms else None, "build_s": build_s, "max_abs_err": err[0], "cosine": err[1]}
    r.update(extra)
    print(json.dumps(r), flush=True)
    return r


def measure_case(case, args):
    arch, bs = CASES[case]
    rows = []
    from tensorforge import zoo
    zfeeds = {k: torch.from_numpy(v).cuda() for k, v in zoo.random_inputs(arch, bs, seed=1).items()}
    zref = zoo_reference(arch, zfeeds)
    for prec in ("fp16", "tf32"):
        rows.append(_tf_row(case, f"tensorforge zoo:{arch}", arch, bs, zoo.get_model(arch), zfeeds, prec,
                            zref, args, rows_only=REF_ROWS))
    tm = peers.torch_model(arch)
    ins = peers.torch_inputs(arch, bs, seed=2)
    args32 = tuple(ins.values())
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    ref = peers.run_eager(tm, args32)[1].clone()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, f"{arch}.onnx")
        try:
            exporter = peers.export_onnx(arch, peers.torch_model(arch, True, tm.state_dict()), path)
            for prec in ("fp16", "tf32"):
                rows.append(_tf_row(case, f"tensorforge ONNX ({exporter} export)", arch, bs, path, ins, prec,
                                    ref, args))
        except Exception as e:  # noqa: BLE001 - keep measuring the peers
            print(f"{case}: ONNX export / tensorforge on it failed: {type(e).__name__}: {e}", flush=True)
            rows.append(row(case, "tensorforge ONNX export", "-", None, bs, arch, error=str(e)[:200]))
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    rows += _peer_rows(case, arch, bs, tm, ins, ref, args)
    return rows


def _tf_row(case, runner, arch, bs, model, feeds, prec, ref, args, rows_only=None):
    try:
        fn, out, build_s, meta = tf_engine(model, feeds, "fp16" if prec == "fp16" else "tf32", args.timing_cache)
        ms = peers.gpu_time(fn)
        got = out[:rows_only] if rows_only else out
        return row(case, runner, prec.upper(), ms, bs, arch, build_s, peers.agreement(got, torch.as_tensor(ref)),
                   meta=meta)
    except Exception as e:  # noqa: BLE001 - a failing runner is a row, not the end of the run
        print(f"{case} {runner} {prec}: {type(e).__name__}: {e}", flush=True)
        return row(case, runner, prec.upper(), None, bs, arch, error=f"{type(e).__name__}: {str(e)[:200]}")
    finally:
        gc.collect()
        torch.cuda.empty_cache()


def _peer_rows(case, arch, bs, tm, ins, ref, args):
    rows = []
    m16 = peers.half_copy(tm)
    a16 = peers.cast_inputs(ins, torch.float16)
    runs = [("torch eager", "FP16", lambda: peers.run_eager(m16, a16)),
            ("torch eager + CUDA graph", "FP16", lambda: peers.run_graph(m16, a16)),
            ("torch eager + CUDA graph", "TF32", lambda: peers.run_graph(tm, tuple(ins.values())))]
    if not args.quick and not args.no_compile:
        runs.append(("torch.compile max-autotune", "FP16", lambda: peers.run_compiled(m16, a16)))
    for runner, prec, make in runs:
        try:
            res = make()
            fn, out = res[0], res[1]
            build_s = res[2] if len(res) > 2 else None
            rows.append(row(case, runner, prec, peers.gpu_time(fn), bs, arch, build_s, peers.agreement(out, ref)))
        except Exception as e:  # noqa: BLE001
            print(f"{case} {runner} {prec}: {type(e).__name__}: {e}", flush=True)
            rows.append(row(case, runner, prec, None, bs, arch, error=f"{type(e).__name__}: {str(e)[:200]}"))
        gc.collect()
        torch.cuda.empty_cache()
    return rows


def table(rows, argv) -> str:
    import triton
    gpu = torch.cuda.get_device_name()
    lines = [f"\n## tensorforge vs peers ({datetime.date.today()}, {gpu}, torch {torch.__version__}, "
             f"triton {triton.__version__})", "",
             f"Command: `python bench/compare.py {' '.join(argv)}`. GPU compute time per batch = median of 7 "
             "x N back-to-back CUDA-graph replays (CUDA events) after warm-up; floor = FLOPs / 989 TFLOP/s. "
             "Error vs reference: zoo rows vs ONNX Runtime CPU (first rows), others vs eager torch FP32.", "",
             "| case | runner | prec | ms | items/s | % of FLOP floor | build / compile s | max abs err | cosine |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["ms"] is None:
            lines.append(f"| {r['case']} | {r['runner']} | {r['precision']} | failed | | | | | |")
            continue
        b = "" if r["build_s"] is None else f"{r['build_s']:.1f}"
        warm = (r.get("meta") or {}).get("warm_build_s")
        b += "" if warm is None else f" (warm cache {warm:.1f})"
        m = r.get("meta") or {}
        if "load_s" in m:
            b += f"; load {m['load_s']:.2f} (+first run {m['load_to_first_output_s']:.2f}), {m['engine_mib']:.0f} MiB"
        lines.append(f"| {r['case']} | {r['runner']} | {r['precision']} | {r['ms']:.3f} | {r['throughput']:.0f} | "
                     f"{100 * r['floor_fraction']:.1f}% | {b} | {r['max_abs_err']:.2e} | {r['cosine']:.5f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma list of {', '.join(CASES)}")
    ap.add_argument("--quick", action="store_true", help="tensorforge + eager + CUDA graph only")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile (≈4 min per ResNet shape)")
    ap.add_argument("--timing-cache", default=None,
                    help="tensorforge timing cache file (each engine is then built twice: cold and warm)")
    ap.add_argument("--out", default=None, help="write the rows as JSON here")
    ap.add_argument("--md", default="BENCHMARKS.md", help="markdown file the table is appended to")
    args = ap.parse_args(argv)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    bad = [c for c in cases if c not in CASES]
    if bad:
        ap.error(f"unknown case(s) {bad}; known: {', '.join(CASES)}")
    rows = []
    for c in cases:
        rows += measure_case(c, args)
    text = table(rows, argv)
    print(text)
    with open(args.md, "a") as f:
        f.write(text)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1, default=str)
    _ = np


if __name__ == "__main__":
    main()
