"""Dynamic shapes, streams and contexts on the GPU (issue 6). Appends markdown tables to BENCHMARKS.md.

  1. one dynamic-batch ResNet-50 engine (profile 1..256, opt 128) at bs 1/16/64/128/256 vs a static
     engine built for each size (CUDA-graph replays, CUDA events)
  2. BERT-base with dynamic batch and sequence (one engine) at several shapes vs a static engine at opt
  3. bs-1 ResNet-50 throughput with 1, 2, 4 execution contexts (one stream each; round-robin from one
     thread, and one thread per context); weights shared
  4. within-inference aux streams: YOLO-style detector bs 1 with 0 / heuristic / 4 aux streams
  5. first-inference-after-shape-change overhead (re-plan, eager run, graph capture; cached shape set)

Usage: python bench/dynamic.py [--fp16] [--quick] [--out BENCHMARKS.md]   (well under 8 min on an H100)
"""
from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import threading
import time

import onnx
import torch

import tensorforge as tf
from tensorforge import zoo


# models (a dry run may swap in the zoo's *_small variants)
RESNET = {"name": "resnet50", "image": 224}
BERT = {"name": "bert_base", "vocab": 30522, "max_seq": 256}
YOLO = {"name": "yolo_det", "image": 640}


def time_ms(fn, stream, iters, warmup=3, repeats=5):
    """Median GPU ms per call over `repeats` x `iters` back-to-back calls (CUDA events)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    meds = []
    for _ in range(repeats):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(stream)
        for _ in range(iters):
            fn()
        b.record(stream)
        b.synchronize()
        meds.append(a.elapsed_time(b) / iters)
    return statistics.median(meds)


def with_dims(model, dims: dict):
    """Copy of `model` with input/output dims replaced: {name: {axis: int | str}}."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for vi in list(m.graph.input) + list(m.graph.output):
        for axis, v in dims.get(vi.name, {}).items():
            d = vi.type.tensor_type.shape.dim[axis]
            d.Clear()
            if isinstance(v, int):
                d.dim_value = v
            else:
                d.dim_param = v
    return m


class Runner:
    """A context with device I/O buffers bound for one shape set and its own stream."""

    def __init__(self, engine, feed: dict, graph=True, stream=None):
        self.ctx = engine.create_execution_context(use_cuda_graph=graph)
        self.stream = stream or torch.cuda.Stream()
        self.bind(engine, feed)

    def bind(self, engine, feed):
        self.ins = {k: v.cuda() for k, v in feed.items()}
        for k, v in self.ins.items():
            self.ctx.set_input_shape(k, tuple(v.shape))
            self.ctx.set_tensor_address(k, v)
        self.outs = {o.name: torch.empty(self.ctx.get_tensor_shape(o.name), dtype=getattr(torch, o.dtype),
                                         device="cuda") for o in engine.outputs}
        for k, v in self.outs.items():
            self.ctx.set_tensor_address(k, v)

    def run(self):
        self.ctx.execute_async(self.stream)

    def ms(self, iters):
        return time_ms(self.run, self.stream, iters)


TIMING_CACHE = None  # one timing cache for all builds: a static engine at bs 128 reuses the dynamic one's


def build(model, cfg_kw, **kw):
    t0 = time.perf_counter()
    if TIMING_CACHE:
        kw.setdefault("timing_cache", TIMING_CACHE)
    eng = tf.Builder(tf.BuilderConfig(device="cuda", **cfg_kw, **kw)).build(model)
    return eng, time.perf_counter() - t0


def _iters(bs):
    return max(5, min(100, 400 // max(bs, 1)))


def _rel(a, b):
    return float((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-6))


def resnet_dynamic_vs_static(cfg_kw, sizes, log):
    model, hw = zoo.get_model(RESNET["name"]), RESNET["image"]
    prof = tf.OptimizationProfile()
    prof.set_shape("input", (1, 3, hw, hw), (128, 3, hw, hw), (256, 3, hw, hw))
    dyn, dyn_build = build(model, cfg_kw, profiles=[prof])
    arena = dyn.plan.meta.get("arena_bytes", dyn.device_memory_size)  # direct mode: kernels allocate the rest
    log(f"dynamic ResNet-50 built in {dyn_build:.1f} s; arena {arena / 2**20:.0f} MiB of "
        f"{dyn.device_memory_size / 2**20:.0f} MiB activations")
    rows, g = [], torch.Generator().manual_seed(0)
    runner = None
    for bs in sizes:
        feed = {"input": torch.rand(bs, 3, hw, hw, generator=g) * 2 - 1}
        if runner is None:
            runner = Runner(dyn, feed)
        else:
            runner.bind(dyn, feed)
        d_ms = runner.ms(_iters(bs))
        d_out = runner.outs["output"].clone()
        st_eng, st_build = build(with_dims(model, {"input": {0: bs}, "output": {0: bs}}), cfg_kw)
        st = Runner(st_eng, feed)
        s_ms = st.ms(_iters(bs))
        rows.append((bs, d_ms, s_ms, d_ms / s_ms, bs / d_ms * 1e3, _rel(d_out, st.outs["output"]), st_build))
        log(f"  bs {bs}: dynamic {d_ms:.3f} ms, static {s_ms:.3f} ms")
        del st, st_eng
        torch.cuda.empty_cache()
    return dyn, rows, dyn_build


def shape_change_overhead(dyn, log):
    """Host ms (enqueue + sync) of the first inference after a shape change vs steady state."""
    out = []
    hw = RESNET["image"]
    bufs = {bs: (torch.rand(bs, 3, hw, hw).cuda(), torch.empty(bs, 1000).cuda()) for bs in (16, 64)}
    for graph in (False, True):
        ctx, s = dyn.create_execution_context(use_cuda_graph=graph), torch.cuda.Stream()

        def use(bs):
            ctx.set_input_shape("input", tuple(bufs[bs][0].shape))
            ctx.set_tensor_address("input", bufs[bs][0])
            ctx.set_tensor_address("output", bufs[bs][1])

        def host_ms():
            t0 = time.perf_counter()
            ctx.execute_async(s)
            s.synchronize()
            return (time.perf_counter() - t0) * 1e3

        use(16)
        for _ in range(3):
            host_ms()
        use(64)  # a new shape set
        t0 = time.perf_counter()
        with torch.cuda.stream(s):
            ctx._prepare()  # the re-plan alone: symbol binding, arena offsets, step list
        replan = (time.perf_counter() - t0) * 1e3
        ctx._plans.pop(ctx._prepared_key, None)  # forget it: the next inference re-plans again
        ctx._prepared_key = None
        first, second = host_ms(), host_ms()
        steady = statistics.median(host_ms() for _ in range(10))
        recent = []
        for bs in (16, 64) * 4:  # both shape sets are recent: their plans (and graphs) are cached
            use(bs)
            recent.append(host_ms())
        mode = "CUDA graph" if graph else "eager"
        out.append((mode, replan, first, second, steady, statistics.median(recent[2:]), ctx.replans))
        log(f"  {mode}: re-plan {replan:.2f} ms, first {first:.2f} ms, steady {steady:.2f} ms")
    return out


def bert_dynamic(cfg_kw, shapes, log):
    vocab, max_seq = BERT["vocab"], BERT["max_seq"]
    shapes = [(bs, seq) for bs, seq in shapes if seq <= max_seq]
    model = with_dims(zoo.get_model(BERT["name"]), {"input_ids": {1: "S"}, "attention_mask": {1: "S"},
                                                   "last_hidden_state": {1: "S"}})
    prof = tf.OptimizationProfile()
    for n in ("input_ids", "attention_mask"):
        prof.set_shape(n, (1, 16), (8, min(128, max_seq)), (32, max_seq))
    dyn, dyn_build = build(model, cfg_kw, profiles=[prof])
    log(f"dynamic BERT-base built in {dyn_build:.1f} s ({dyn.num_aux_streams} aux streams)")
    rows, runner = [], None
    for bs, seq in shapes:
        feed = {"input_ids": torch.randint(0, vocab, (bs, seq)), "attention_mask": torch.ones(bs, seq, dtype=torch.int64)}
        if runner is None:
            runner = Runner(dyn, feed)
        else:
            runner.bind(dyn, feed)
        rows.append((bs, seq, runner.ms(max(5, min(50, 2048 // (bs * seq // 16 + 1)))), None))
        log(f"  bs {bs} seq {seq}: {rows[-1][2]:.3f} ms")
    sq = min(128, max_seq)  # the opt shape (8, 128)
    st_eng, _ = build(with_dims(model, {"input_ids": {0: 8, 1: sq}, "attention_mask": {0: 8, 1: sq},
                                        "last_hidden_state": {0: 8, 1: sq}, "pooler_output": {0: 8}}), cfg_kw)
    feed = {"input_ids": torch.randint(0, vocab, (8, sq)), "attention_mask": torch.ones(8, sq, dtype=torch.int64)}
    st = Runner(st_eng, feed)
    static_ms = st.ms(20)
    del st, st_eng, runner, dyn
    torch.cuda.empty_cache()
    return rows, static_ms, dyn_build


def stream_throughput(cfg_kw, counts, seconds, log):
    """bs-1 ResNet-50: N contexts, one stream each, CUDA graphs; img/s round-robin and with threads."""
    model = zoo.get_model(RESNET["name"])
    eng, _ = build(with_dims(model, {"input": {0: 1}, "output": {0: 1}}), cfg_kw)
    feed = {"input": torch.rand(1, 3, RESNET["image"], RESNET["image"])}
    rows = []
    for n in counts:
        runners = [Runner(eng, feed) for _ in range(n)]
        for r in runners:
            for _ in range(3):
                r.run()
        torch.cuda.synchronize()
        done, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            for _ in range(20):
                for r in runners:
                    r.run()
            done += 20 * n
        torch.cuda.synchronize()
        rr = done / (time.perf_counter() - t0)
        counts_t = [0] * n
        stop = time.perf_counter() + seconds

        def loop(r, i):
            while time.perf_counter() < stop:
                for _ in range(10):
                    r.run()
                r.stream.synchronize()
                counts_t[i] += 10

        threads = [threading.Thread(target=loop, args=(r, i)) for i, r in enumerate(runners)]
        t0 = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        th_rate = sum(counts_t) / (time.perf_counter() - t0)
        rows.append((n, rr, th_rate, runners[0].ctx.arena_bytes / 2**20))
        log(f"  {n} stream(s): {rr:.0f} img/s round-robin, {th_rate:.0f} img/s threads")
        del runners
    weights = sum(w.numel() * w.element_size() for w in eng.weights.values()) / 2**20
    return rows, weights


def aux_streams(cfg_kw, log):
    model = zoo.get_model(YOLO["name"])
    feed = {"images": torch.rand(1, 3, YOLO["image"], YOLO["image"])}
    rows, ref = [], None
    for cap in (0, None, 4):
        eng, _ = build(model, cfg_kw, max_aux_streams=cap)
        r = Runner(eng, feed)
        ms = r.ms(50)
        eager = Runner(eng, feed, graph=False)
        e_ms = eager.ms(20)
        out = r.outs["output"].clone()
        ref = out if ref is None else ref
        rows.append(("heuristic" if cap is None else cap, eng.num_aux_streams, ms, e_ms, _rel(out, ref),
                     eng.device_memory_size / 2**20))
        log(f"  max_aux_streams={cap}: {eng.num_aux_streams} used, graph {ms:.3f} ms, eager {e_ms:.3f} ms")
        del r, eager, eng
        torch.cuda.empty_cache()
    return rows


def report(args, res) -> str:
    gpu, prec = torch.cuda.get_device_name(), "FP16" if args.fp16 else "TF32"
    cmd = "python bench/dynamic.py" + (" --fp16" if args.fp16 else "") + (" --quick" if args.quick else "")
    L = [f"\n## Dynamic shapes, streams, contexts ({datetime.date.today()}, {gpu}, torch {torch.__version__}, {prec})",
         "", f"Command: `{cmd}`. GPU ms per inference = median of 5 runs of back-to-back CUDA-graph replays "
         "(CUDA events). Static engines are built from the same model with the batch dim fixed."]
    if "resnet" in res:
        rows, b = res["resnet"]
        L += ["", f"ResNet-50, one dynamic engine (profile 1..256, opt 128; built in {b:.0f} s) vs a static engine "
              "per batch size. Diff = max |dynamic - static| / max |static|.", "",
              "| batch | dynamic ms | static ms | dynamic / static | dynamic img/s | diff | static build s |",
              "|---|---|---|---|---|---|---|"]
        L += [f"| {bs} | {d:.3f} | {s:.3f} | {r:.3f} | {ips:.0f} | {e:.1e} | {sb:.1f} |" for bs, d, s, r, ips, e, sb in rows]
    if "change" in res:
        L += ["", "First inference after a shape change (dynamic ResNet-50, bs 16 -> 64; host ms incl. sync). "
              "Re-plan = symbol binding + arena offsets + step list; eager first = re-plan + eager run; graph "
              "first = re-plan + eager run + capture; recent = alternating between two recent shape sets (plans "
              "and graphs cached, no re-plan).", "",
              "| mode | re-plan | first | second | steady | recent shape set | re-plans |", "|---|---|---|---|---|---|---|"]
        L += [f"| {m} | {a:.2f} | {b:.2f} | {c:.2f} | {d:.2f} | {e:.2f} | {n} |" for m, a, b, c, d, e, n in res["change"]]
    if "bert" in res:
        rows, static_ms, b = res["bert"]
        L += ["", f"BERT-base, one engine with dynamic batch and sequence (profile (1,16)..(32,256), opt (8,128); "
              f"built in {b:.0f} s). Static engine at (8,128): {static_ms:.3f} ms.", "",
              "| batch | seq | ms | sequences/s |", "|---|---|---|---|"]
        L += [f"| {bs} | {seq} | {ms:.3f} | {bs / ms * 1e3:.0f} |" for bs, seq, ms, _ in rows]
    if "streams" in res:
        rows, w = res["streams"]
        L += ["", f"ResNet-50 bs 1 throughput with N execution contexts (one CUDA stream each, CUDA graphs); the "
              f"contexts share one copy of the weights ({w:.0f} MiB), each has its own arena.", "",
              "| contexts / streams | img/s round-robin (1 thread) | img/s (1 thread per context) | arena MiB each |",
              "|---|---|---|---|"]
        L += [f"| {n} | {a:.0f} | {b:.0f} | {m:.1f} |" for n, a, b, m in rows]
    if "aux" in res:
        L += ["", "Within-inference aux streams: YOLO-style detector (zoo:yolo_det) bs 1. Diff vs no aux streams.", "",
              "| max_aux_streams | used | graph ms | eager ms | diff | arena MiB |", "|---|---|---|---|---|---|"]
        L += [f"| {c} | {u} | {g:.3f} | {e:.3f} | {d:.1e} | {m:.1f} |" for c, u, g, e, d, m in res["aux"]]
    return "\n".join(L) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fp16", action="store_true", help="build FP16 engines (default: TF32)")
    ap.add_argument("--quick", action="store_true", help="fewer sizes (smoke run)")
    ap.add_argument("--out", default="BENCHMARKS.md")
    args = ap.parse_args()
    cfg = {"fp16": True} if args.fp16 else {}
    t_start = time.perf_counter()
    global TIMING_CACHE
    import tempfile
    TIMING_CACHE = tempfile.mktemp(suffix=".timing.json")

    def log(msg):
        print(f"[{time.perf_counter() - t_start:6.1f}s] {msg}", file=sys.stderr, flush=True)

    res = {}
    sizes = (1, 16, 128) if args.quick else (1, 16, 64, 128, 256)
    sections = [
        ("resnet", lambda: resnet_dynamic_vs_static(cfg, sizes, log)),
        ("bert", lambda: bert_dynamic(cfg, [(1, 16), (1, 128), (8, 64), (8, 128), (32, 128)] +
                                      ([] if args.quick else [(32, 256)]), log)),
        ("streams", lambda: stream_throughput(cfg, (1, 2, 4), 1.0 if args.quick else 3.0, log)),
        ("aux", lambda: aux_streams(cfg, log)),
    ]
    for name, fn in sections:
        try:
            out = fn()
            if name == "resnet":
                dyn, rows, b = out
                res["resnet"] = (rows, b)
                res["change"] = shape_change_overhead(dyn, log)
                del dyn
                torch.cuda.empty_cache()
            else:
                res[name] = out
        except Exception as e:  # keep the other figures; the failure is printed
            log(f"section {name} failed: {type(e).__name__}: {e}")
    text = report(args, res)
    print(text)
    with open(args.out, "a") as f:
        f.write(text)
    log("done")


if __name__ == "__main__":
    main()
