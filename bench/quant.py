"""GPU benchmark of quantized engines (issue 14's targets): each zoo model built in FP16 and, from the
Q/DQ model `tensorforge quantize` writes (max calibration on random inputs: placeholder scales,
fine for speed; the unquantized part in FP16 as ModelOpt writes it, --high-precision), in FP8
and/or INT8; both timed with CUDA graphs (peers.gpu_time: median of
back-to-back replays) in one process; the quantized engine's first output is compared with the FP16
engine's (cosine). Per quantized engine also: how many quantized layers chose each tactic family
(aten:fp16_form = the no-regression rule kept the FP16 form) and how many kept a tactic slower than
their FP16 form (the target is 0).

  python bench/quant.py [--cases bert_base_bs32,resnet50_bs4] [--opt-level 3] [--json out.json]
  python bench/quant.py --dry-run --cases bert_base_bs1   # CPU: the *_small models, built and run once, untimed

Prints a markdown table; --json writes the rows. Build times are included in the run (the whole
default set is meant to finish in about 5 minutes on an H200)."""
from __future__ import annotations

import argparse
import collections
import functools
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench import peers  # noqa: E402

# case -> (zoo model, batch, quantized precisions); FP16 is always built as the baseline
CASES = {"bert_base_bs32": ("bert_base", 32, ("fp8",)),
         "vit_b16_bs32": ("vit_b16", 32, ("fp8",)),
         "resnet50_bs128": ("resnet50", 128, ("int8", "fp8")),
         "bert_base_bs1": ("bert_base", 1, ("fp8",)),
         "resnet50_bs4": ("resnet50", 4, ("int8",)),
         "resnet50_bs2048": ("resnet50", 2048, ("int8",))}  # issue 14: "also report bs 2048"
TARGET_MS = {("bert_base_bs32", "fp8"): 1.20, ("vit_b16_bs32", "fp8"): 1.85, ("resnet50_bs128", "int8"): 2.60,
             ("resnet50_bs128", "fp8"): 2.60}
CALIB_BATCH, CALIB_SETS = 4, 2


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def build(model, feeds, opt_level, fp16, device="cuda"):
    """(engine, replay fn, first output, build s): built for these shapes, captured in a CUDA graph
    (on the CPU: run once, the replay fn is None)."""
    import tensorforge as tf
    prof = tf.OptimizationProfile()
    for n, v in feeds.items():
        prof.set_shape(n, v.shape, v.shape, v.shape)
    cfg = tf.BuilderConfig(device=device, fp16=fp16, opt_level=opt_level, profiles=[prof])
    t0 = time.perf_counter()
    eng = tf.Builder(cfg).build(model)
    build_s = time.perf_counter() - t0
    ctx = eng.create_execution_context()
    first = ctx.infer(feeds)
    if device == "cpu":
        return eng, None, first[eng.plan.outputs[0]], build_s
    replay, outs = peers.engine_graph(ctx, feeds, first)
    if PROFILE:
        try:
            profile(eng, ctx, feeds)
        except Exception as e:  # noqa: BLE001 - the timing above stands without the profile
            log(f"  per-layer profile failed: {type(e).__name__}: {str(e)[:200]}")
    return eng, replay, outs[eng.plan.outputs[0]], build_s


PROFILE = False  # --profile: per-layer GPU times of each engine (eager launches, after the graph timing)


def profile(eng, ctx, feeds, runs=5, top=12):
    """Print the engine's layers by median GPU ms (the runtime's per-layer profiler), the top `top`."""
    from tensorforge.cli.forgeexec.profile import Profiler
    prof = Profiler()
    ctx.profiler = prof
    try:
        for _ in range(runs):
            ctx.infer(feeds)
        torch.cuda.synchronize()
    finally:
        ctx.profiler = None
    tactic = {lay.name: f"{lay.tactic.get('source')}:{lay.tactic.get('name')}" for lay in eng.plan.layers}
    med = sorted(((float(lay.median()), lay.name) for lay in prof.layers), reverse=True)
    log(f"  per-layer profile: {len(med)} layers, sum of medians {sum(m for m, _ in med):.3f} ms")
    for m, k in med[:top]:
        log(f"    {m:.4f} ms {k[:80]} ({tactic.get(k, '?')})")
    kind = {lay.name: f"{lay.type} {tactic[lay.name]}" for lay in eng.plan.layers}
    by = {}
    for m, k in med:
        n, t = by.get(kind.get(k, "?"), (0, 0.0))
        by[kind.get(k, "?")] = (n + 1, t + m)
    log("  by layer type and tactic: " + "; ".join(f"{k} x{n} {t:.3f} ms" for k, (n, t) in
                                                  sorted(by.items(), key=lambda kv: -kv[1][1])))


@functools.lru_cache(maxsize=None)
def quantized_model(arch, mode, high_precision="fp16"):
    """The Q/DQ model of a zoo model (max calibration on a few random batches; once per run)."""
    from tensorforge import zoo
    from tensorforge.quant import quantize
    calib = [zoo.random_inputs(arch, CALIB_BATCH, seed=10 + i) for i in range(CALIB_SETS)]
    return quantize(zoo.get_model(arch), mode, calib, "max", high_precision=high_precision)


def quant_summary(eng) -> dict:
    """Chosen tactic families of the quantized layers, the number slower than their FP16 form, and
    over the timed (distinct) quantized layers: the chosen tactics' ms vs the FP16 forms' ms, and
    the best ms of each family (the kernels' own gain, apart from the rest of the engine)."""
    times = eng.plan.meta.get("quant_times", {})
    chosen, best = collections.Counter(), collections.defaultdict(float)
    slower, layers, chosen_ms, fp16_ms = 0, 0, 0.0, 0.0
    for lay in eng.plan.layers:
        if not lay.type.startswith("fused.Q"):
            continue
        layers += 1
        fam = f"{lay.tactic.get('source')}:{lay.tactic.get('name')}"
        chosen[fam] += 1
        t = {k: v for k, v in times.get(lay.name, {}).items() if v is not None}
        fp16 = [v for k, v in t.items() if "fp16_form" in k]
        mine = [v for k, v in t.items() if k.startswith(fam + "[") or k == fam]
        if fp16 and mine:
            chosen_ms, fp16_ms = chosen_ms + min(mine), fp16_ms + min(fp16)
            slower += "fp16_form" not in fam and min(mine) > min(fp16)
            for f in {k.split("[")[0] for k in t}:
                best[f] += min(v for k, v in t.items() if k.split("[")[0] == f)
    return {"quantized_layers": layers, "chosen": dict(chosen), "slower_than_fp16": int(slower),
            "timed_layers_chosen_ms": chosen_ms, "timed_layers_fp16_form_ms": fp16_ms,
            "timed_layers_best_ms_by_family": dict(best)}


def engine_choice(eng) -> dict:
    """The builder's whole-engine check (tensorforge.builder.fp16_form): the engine it kept and its own times of
    the quantized engine and of the FP16 engine without the Q/DQ."""
    c = eng.plan.meta.get("engine_choice")
    if not c:
        return {"engine": "quantized (not checked)"}
    return {"engine": c["chosen"], "builder_quantized_ms": c.get("quantized_ms"),
            "builder_fp16_form_ms": c.get("fp16_form_ms")}


def measure_case(case, args) -> list[dict]:
    from tensorforge import zoo
    arch, bs, modes = CASES[case]
    dev = "cpu" if args.dry_run else "cuda"
    if args.dry_run:  # the flow on the small variants, untimed
        arch, bs = f"{arch}_small", min(bs, 2)
    feeds = {k: torch.from_numpy(v).to(dev) for k, v in zoo.random_inputs(arch, bs, seed=1).items()}
    rows = []
    log(f"{case}: building FP16")
    eng, fn, ref, build_s = build(zoo.get_model(arch), feeds, args.opt_level, fp16=True, device=dev)
    base = peers.gpu_time(fn) if fn else None
    rows.append({"case": case, "precision": "fp16", "ms": base, "throughput": bs / base * 1e3 if base else None,
                 "build_s": build_s, "layers": len(eng.plan.layers), "cosine_vs_fp16": 1.0, "speedup": 1.0})
    log(f"{case}: fp16 {_f(base, '.3f')} ms (build {build_s:.1f} s)")
    ref = ref.detach().clone()
    del eng, fn
    for mode in modes:
        if args.modes and mode not in args.modes:
            continue
        try:
            t0 = time.perf_counter()
            q = type(quantized_model(arch, mode, args.high_precision))()
            q.CopyFrom(quantized_model(arch, mode, args.high_precision))  # the builder gets its own copy
            quant_s = time.perf_counter() - t0
            log(f"{case}: quantized ({mode}, rest in {args.high_precision}) in {quant_s:.1f} s; building")
            eng, fn, out, build_s = build(q, feeds, args.opt_level, fp16=args.qdq_fp16, device=dev)
            ms = peers.gpu_time(fn) if fn else None
            _, cos = peers.agreement(out, ref)
            rows.append({"case": case, "precision": mode, "ms": ms, "throughput": bs / ms * 1e3 if ms else None,
                         "build_s": build_s, "quantize_s": quant_s, "layers": len(eng.plan.layers),
                         "cosine_vs_fp16": cos, "speedup": base / ms if ms else None,
                         "target_ms": TARGET_MS.get((case, mode)), "high_precision": args.high_precision,
                         "layer_types": layer_types(eng), **quant_summary(eng), **engine_choice(eng)})
            r = rows[-1]
            log(f"{case}: {mode} {_f(ms, '.3f')} ms, cosine {cos:.4f}, {r['chosen']}, "
                f"layers by output type {r['layer_types']}; {r['slower_than_fp16']} slower than their FP16 form; "
                f"timed quantized layers: chosen {r['timed_layers_chosen_ms']:.3f} ms / FP16 forms "
                f"{r['timed_layers_fp16_form_ms']:.3f} ms; best by family {r['timed_layers_best_ms_by_family']}")
            for line in slowest_layers(eng):
                log(f"    {line}")
            del eng, fn
        except Exception as e:  # noqa: BLE001 - report and go on with the other cases
            log(f"{case}: {mode} failed: {type(e).__name__}: {str(e)[:300]}")
            rows.append({"case": case, "precision": mode, "ms": None, "error": f"{type(e).__name__}: {str(e)[:300]}"})
        torch.cuda.empty_cache()
    return rows


def slowest_layers(eng, n=8) -> list[str]:
    """The n quantized layers whose chosen tactic took longest in the builder's timing, each with its
    best time per tactic family (where a quantized engine's time goes, from the build alone)."""
    times = eng.plan.meta.get("quant_times", {})
    rows = []
    for lay in eng.plan.layers:
        t = {k: v for k, v in times.get(lay.name, {}).items() if v is not None}
        if not lay.type.startswith("fused.Q") or not t:
            continue
        fam = f"{lay.tactic.get('source')}:{lay.tactic.get('name')}"
        mine = [v for k, v in t.items() if k.split("[")[0] == fam]
        by_fam = {}
        for k, v in t.items():
            by_fam[k.split("[")[0]] = min(v, by_fam.get(k.split("[")[0], v))
        rows.append((min(mine) if mine else 0.0, lay.name, fam, by_fam))
    rows.sort(key=lambda r: -r[0])
    return [f"{ms:.4f} ms {name[:70]} -> {fam}; " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(fams.items()))
            for ms, name, fam, fams in rows[:n]]


def layer_types(eng) -> dict:
    """{output type: layers}: how much of the engine runs in FP32 / FP16 / a quantized type."""
    return dict(collections.Counter(lay.precision for lay in eng.plan.layers))


def _f(v, fmt):
    return "-" if v is None else format(v, fmt)


def table(rows) -> str:
    lines = ["| case | precision | ms | img or seq/s | FP16 ms / ms | target ms | cosine vs FP16 "
             "| quantized layers: chosen | slower than FP16 form | timed quantized layers: chosen / FP16 form ms "
             "| build s | engine kept: builder's quantized / FP16-form ms |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        chosen = ", ".join(f"{k} {v}" for k, v in sorted((r.get("chosen") or {}).items()))
        lines.append(f"| {r['case']} | {r['precision']} | {_f(r.get('ms'), '.3f')} | {_f(r.get('throughput'), '.0f')} "
                     f"| {_f(r.get('speedup'), '.2f')} | {_f(r.get('target_ms'), '.2f')} "
                     f"| {_f(r.get('cosine_vs_fp16'), '.4f')} | {r.get('quantized_layers', '-')}: {chosen or '-'} "
                     f"| {r.get('slower_than_fp16', '-')} | {_f(r.get('timed_layers_chosen_ms'), '.3f')} / "
                     f"{_f(r.get('timed_layers_fp16_form_ms'), '.3f')} | {_f(r.get('build_s'), '.1f')} "
                     f"| {r.get('engine', '-')}: {_f(r.get('builder_quantized_ms'), '.3f')} / "
                     f"{_f(r.get('builder_fp16_form_ms'), '.3f')} |"
                     + (f" error: {r['error']}" if r.get("error") else ""))
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {', '.join(CASES)}")
    ap.add_argument("--modes", default="", help="only these quantized precisions (fp8,int8); default: each case's")
    ap.add_argument("--opt-level", type=int, default=3, help="builder optimization level (3: every default tactic)")
    ap.add_argument("--json", default=None, help="write the rows to this JSON file")
    ap.add_argument("--high-precision", choices=("fp16", "bf16", "fp32"), default="fp16",
                    help="type of the Q/DQ model's unquantized part (tensorforge quantize --high-precision-dtype)")
    ap.add_argument("--qdq-fp16", action="store_true", help="build the Q/DQ model with fp16=True (its FP32 "
                    "non-Q/DQ part in FP16: for --high-precision fp32)")
    ap.add_argument("--dry-run", action="store_true", help="on the CPU: the *_small models, built and run once, "
                    "no timing (checks the flow)")
    ap.add_argument("--profile", action="store_true", help="print each engine's slowest layers (per-layer GPU "
                    "times of eager launches)")
    args = ap.parse_args(argv)
    global PROFILE
    PROFILE = args.profile
    args.modes = [m for m in args.modes.split(",") if m]
    if not args.dry_run and not torch.cuda.is_available():
        sys.exit("bench/quant.py needs a CUDA GPU (or --dry-run)")
    t0 = time.perf_counter()
    rows = []
    for case in [c for c in args.cases.split(",") if c]:
        if case not in CASES:
            sys.exit(f"unknown case '{case}' ({', '.join(CASES)})")
        rows += measure_case(case, args)
        if args.json:  # after each case: a run stopped at its time limit keeps what it measured
            _write(args, rows, time.perf_counter() - t0)
    dev = "CPU (dry run, small models, untimed)" if args.dry_run else torch.cuda.get_device_name()
    head = (f"Quantized engines vs FP16 on {dev}, torch {torch.__version__}, opt level {args.opt_level}, "
            f"{time.perf_counter() - t0:.0f} s in all (builds included); calibration: max on random inputs; weight "
            f"scales: INT8 per channel, FP8 per tensor (tensorforge quantize's defaults); "
            f"Q/DQ model's unquantized part in {args.high_precision}{' (built with fp16)' if args.qdq_fp16 else ''}")
    print("\n" + head + "\n\n" + table(rows), flush=True)
    if args.json:
        _write(args, rows, time.perf_counter() - t0)
    return rows


def _write(args, rows, seconds):
    dev = "CPU (dry run, small models, untimed)" if args.dry_run else torch.cuda.get_device_name()
    with open(args.json, "w") as f:
        json.dump({"device": dev, "torch": torch.__version__, "opt_level": args.opt_level, "rows": rows,
                   "seconds": seconds}, f, indent=1, default=float)


if __name__ == "__main__":
    main()

