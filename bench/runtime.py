"""Runtime overhead on the GPU: host time per layer on the eager path, eager and CUDA-graph time per
inference, and engine load -> first output in a fresh process after CUDA is initialized (the process must not
import Triton).

  python bench/runtime.py [--cases resnet50_bs4,bert_base_bs1] [--opt-level 3] [--timing-cache F] [--json F]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch

CASES = {"resnet50_bs4": ("resnet50", 4), "bert_base_bs1": ("bert_base", 1)}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHILD = r'''
import json, sys, time
t0 = time.perf_counter()
import torch
t_torch = time.perf_counter()
torch.zeros(1, device="cuda")  # CUDA context: the process's cost, not the engine's
torch.cuda.synchronize()
t1 = time.perf_counter()
before = set(sys.modules)
import cProfile, collections, io, os, pstats
prof = cProfile.Profile() if os.environ.get("BENCH_PROFILE_FIRST") else None
if prof:  # who imports sympy / onnx (the runtime should not): the first such import's stack
    import traceback
    class _Who:
        seen = set()
        def find_spec(self, name, path=None, target=None):
            top = name.split(".")[0]
            if top in ("sympy", "onnx") and top not in self.seen:
                self.seen.add(top)
                st = [f for f in traceback.format_stack() if "importlib" not in f][-8:]
                print(f"first import of {top}:\n" + "".join(st), file=sys.stderr)
            return None
    sys.meta_path.insert(0, _Who())
if prof: prof.enable()
from tensorforge.runtime import Engine
eng = Engine.load(sys.argv[1])
t_load = time.perf_counter()
feed = torch.load(sys.argv[2])
ctx = eng.create_execution_context()
first = []
if prof:  # host seconds of each layer's first call (synchronized), by tactic
    from tensorforge.runtime import steps
    _orig, tac = steps._exec, {l.name: str(l.tactic)[:50] for l in eng.plan.layers}
    def _timed(L, *a):
        t = time.perf_counter(); r = _orig(L, *a); torch.cuda.synchronize()
        first.append((time.perf_counter() - t, L.name, tac.get(L.name))); return r
    steps._exec = _timed
out = ctx.infer(feed)
torch.cuda.synchronize()
t2 = time.perf_counter()
if prof:
    prof.disable()
    steps._exec = _orig  # (a sync inside would break the second inference's layer-graph captures)
out = ctx.infer(feed)
torch.cuda.synchronize()
t3 = time.perf_counter()
if prof:
    sio = io.StringIO()
    pstats.Stats(prof, stream=sio).sort_stats("tottime").print_stats(14)
    print(sio.getvalue()[-4000:], file=sys.stderr)
    fam = collections.Counter()
    for t, n, tc in first:
        fam[tc.split("(")[0].split("{")[0][:30]] += t
    print("first calls by tactic (s):", {k: round(v, 3) for k, v in fam.most_common(10)}, file=sys.stderr)
    print("slowest first calls:", [(round(t, 4), n, tc) for t, n, tc in sorted(first, reverse=True)[:8]],
          file=sys.stderr)
import collections
new = collections.Counter(m.split(".")[0] for m in set(sys.modules) - before)
print(json.dumps({"new_modules": dict(new.most_common(12)), "load_to_first_s": t2 - t1, "load_s": t_load - t1, "second_infer_s": t3 - t2,
                  "torch_import_s": t_torch - t0, "cuda_init_s": t1 - t_torch,
                  "triton": "triton" in sys.modules}))
'''


def per_inference_ms(ctx, stream, iters):
    """Wall ms per inference of back-to-back execute_async calls (the slower of host and GPU)."""
    for _ in range(3):
        ctx.execute_async(stream)
    stream.synchronize()
    t = time.perf_counter()
    for _ in range(iters):
        ctx.execute_async(stream)
    stream.synchronize()
    return (time.perf_counter() - t) * 1e3 / iters


def host_us_per_layer(ctx, stream, layers, iters=10):
    """Host µs per layer spent enqueueing on the eager path (GPU kept from blocking the queue)."""
    best = float("inf")
    for _ in range(iters):
        stream.synchronize()
        t = time.perf_counter()
        ctx.execute_async(stream)
        best = min(best, time.perf_counter() - t)
    stream.synchronize()
    return best * 1e6 / layers


def host_breakdown(ctx, stream, top=12):
    """Host µs of each launch of the eager path (its pre-bound replay, else the kernel call), summed
    per kind, and the slowest launches with their tactics."""
    from tensorforge.runtime import steps
    xp, bound = ctx.exec_plan, ctx._bound_launches
    slots, per, rows = list(xp.initial), {}, []
    tactic = {lay.name: lay.tactic for lay in ctx.plan.layers}
    with torch.cuda.stream(stream):
        stream.synchronize()
        for k, L in enumerate(xp.launches):
            b = bound[k]
            t = time.perf_counter()
            if b:
                b(stream.cuda_stream)
            else:
                steps._exec(L, slots, xp.names, True, ctx._arena_ptr, None)
            us = (time.perf_counter() - t) * 1e6
            kind = type(b).__name__ if b else "direct"
            n, tot = per.get(kind, (0, 0.0))
            per[kind] = (n + 1, tot + us)
            rows.append((us, L.name, kind, str(tactic.get(L.name))[:60]))
        stream.synchronize()
    rows.sort(reverse=True)
    return {"per_kind_us": {k: [n, round(t, 1)] for k, (n, t) in per.items()},
            "slowest": [[round(u, 1), n, k, t] for u, n, k, t in rows[:top]]}


def bench_case(name, model, batch, args, tmp):
    import tensorforge as tf
    from tensorforge import zoo
    feed = {k: torch.from_numpy(v).cuda() for k, v in zoo.random_inputs(model, batch, seed=1).items()}
    prof = tf.OptimizationProfile()  # the benchmarked shapes: the engine stores their cubins
    for k, v in feed.items():
        prof.set_shape(k, tuple(v.shape), tuple(v.shape), tuple(v.shape))
    cfg = tf.BuilderConfig(device="cuda", fp16=True, opt_level=args.opt_level, profiles=[prof],
                           timing_cache=args.timing_cache or None)
    t = time.perf_counter()
    eng = tf.Builder(cfg).build(zoo.get_model(model))
    build_s = time.perf_counter() - t
    stream = torch.cuda.Stream()
    rows = {}
    for mode in ("eager_direct", "eager", "graph"):  # eager_direct: no per-layer graphs (runtime.layer_graphs)
        ctx = eng.create_execution_context(use_cuda_graph=mode == "graph", layer_graphs=mode != "eager_direct")
        ctx.infer(feed)
        with torch.cuda.stream(stream):
            rows[f"{mode}_ms"] = per_inference_ms(ctx, stream, args.iters)
            if mode != "graph":
                rows[f"host_us_per_layer{'' if mode == 'eager' else '_direct'}"] = \
                    host_us_per_layer(ctx, stream, len(eng.plan.layers))
        if mode != "graph":
            kinds = {}
            for b in ctx._bound_launches or []:
                kind = type(b).__name__ if b else "direct"
                kinds[kind] = kinds.get(kind, 0) + 1
            rows[f"launch_kinds_{mode}"] = kinds
            if mode == "eager":
                rows["capture_errors"] = ctx.layer_graphs.errors
                rows["layer_graphs"] = {"captured": ctx.layer_graphs.captured, "failed": ctx.layer_graphs.failed,
                                        "kept_MiB": round(ctx.layer_graphs.kept_bytes / 2**20, 1),
                                        "arena_MiB": round(ctx.arena_bytes / 2**20, 1)}
                rows["host_breakdown"] = host_breakdown(ctx, stream)
        if mode == "eager":
            out = ctx.infer(feed)
            ref = eng.create_execution_context(layer_graphs=False).infer(feed)
            rows["eager_matches_direct"] = all(torch.equal(out[k], ref[k]) for k in out)
    path = os.path.join(tmp, f"{name}.engine")
    eng.save(path)
    from tensorforge.runtime import Engine
    torch.cuda.synchronize()
    t = time.perf_counter()  # in this process (modules imported, CUDA libraries initialised)
    Engine.load(path).create_execution_context().infer(feed)
    torch.cuda.synchronize()
    rows["load_to_first_in_process_s"] = round(time.perf_counter() - t, 3)
    torch.save({k: v.cpu() for k, v in feed.items()}, os.path.join(tmp, "feed.pt"))
    # bytecode cached where the process can write it (an installed package has it; a fresh checkout on
    # a read-only or PYTHONDONTWRITEBYTECODE machine compiles every module it imports): the first child
    # fills the cache, the second one is the measurement
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PYTHONPYCACHEPREFIX=os.path.join(tmp, "pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    child = {}
    for run in ("cold_bytecode", "measured"):
        r = subprocess.run([sys.executable, "-c", CHILD, path, os.path.join(tmp, "feed.pt")], capture_output=True,
                           text=True, env=env, timeout=300)
        res = json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else {"error": r.stderr[-500:]}
        if run == "cold_bytecode":
            child["load_to_first_cold_bytecode_s"] = res.get("load_to_first_s")
        else:
            child.update(res)
    if args.profile_first:  # again under cProfile (slower): where the first inference's time goes
        r = subprocess.run([sys.executable, "-c", CHILD, path, os.path.join(tmp, "feed.pt")], capture_output=True,
                           text=True, env=dict(env, BENCH_PROFILE_FIRST="1"), timeout=300)
        print(f"--- {name}: first inference in a fresh process, cProfile by tottime ---\n{r.stderr[-4000:]}")
    return dict(rows, layers=len(eng.plan.layers), build_s=round(build_s, 1), **child)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--opt-level", type=int, default=3)
    ap.add_argument("--timing-cache", default="")
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--json", default="")
    ap.add_argument("--profile-first", action="store_true", help="also profile load -> first output")
    args = ap.parse_args(argv)
    out = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "opt_level": args.opt_level,
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cases": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases.split(","):
            out["cases"][name] = bench_case(name, *CASES[name], args, tmp)
    print(f"{out['gpu']}, torch {out['torch']}, FP16, opt level {args.opt_level}, {out['date']}")
    print(f"{'case':<16}{'layers':>7}{'host us/layer':>15}{'(direct)':>10}{'eager ms':>10}{'(direct)':>10}"
          f"{'graph ms':>10}{'load->1st s':>13}{'triton':>8}")
    for name, r in out["cases"].items():
        print(f"{name:<16}{r['layers']:>7}{r['host_us_per_layer']:>15.1f}{r['host_us_per_layer_direct']:>10.1f}"
              f"{r['eager_ms']:>10.3f}{r['eager_direct_ms']:>10.3f}{r['graph_ms']:>10.3f}"
              f"{r.get('load_to_first_s', float('nan')):>13.3f}{str(r.get('triton', '?')):>8}")
        print(f"  launches: {r['launch_kinds_eager']} (direct: {r['launch_kinds_eager_direct']}); "
              f"eager output == direct output: {r['eager_matches_direct']}")
        print(f"  host us by kind: {r['host_breakdown']['per_kind_us']}; layer graphs {r['layer_graphs']}; "
              f"capture errors: {r['capture_errors']}")
        for row in r["host_breakdown"]["slowest"]:
            print(f"    {row}")
        print(f"  load -> first: fresh process {r.get('load_to_first_s')} s (load {r.get('load_s')}, "
              f"no bytecode cached {r.get('load_to_first_cold_bytecode_s')} s, "
              f"2nd infer {r.get('second_infer_s')}), in process {r['load_to_first_in_process_s']} s; "
              f"modules imported: {r.get('new_modules')}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
