"""Ablation on the GPU: one BuilderConfig knob at a time, same inputs, CUDA-graph replay timing.

  python bench/ablation.py --knob activation_memory=arena,direct [--cases resnet50_bs4,...] [--fp16]
"""
from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time

import torch

CASES = {"resnet50_bs4": ("resnet50", 4), "resnet50_bs128": ("resnet50", 128), "vit_b16_bs32": ("vit_b16", 32),
         "bert_base_bs1": ("bert_base", 1), "bert_base_bs32": ("bert_base", 32)}


def capture(ctx, stream, iters):
    """A CUDA graph of `iters` back-to-back enqueues of ctx (after one eager run)."""
    g = torch.cuda.CUDAGraph()
    ctx.execute_async(stream)
    stream.synchronize()
    with torch.cuda.graph(g, stream=stream):
        for _ in range(iters):
            ctx.execute_async(stream)
    return g


def graph_time(ctx, stream, iters=50, reps=7):
    """Median ms per inference over back-to-back replays of a graph capturing `iters` enqueues."""
    g = capture(ctx, stream, iters)
    ts = []
    with torch.cuda.stream(stream):  # replay on the stream the events are recorded on
        g.replay()
        stream.synchronize()
        for _ in range(reps):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record(stream)
            g.replay()
            b.record(stream)
            b.synchronize()
            ts.append(a.elapsed_time(b) / iters)
    return statistics.median(ts)


def run(case, knob, value, fp16, cache, **extra):
    """(ms, build s, engine, first output, context) of one case built with knob=value (+ extra)."""
    import tensorforge as tf
    from tensorforge import zoo
    name, bs = CASES[case]
    feeds = {k: torch.from_numpy(v).cuda() for k, v in zoo.random_inputs(name, bs, seed=1).items()}
    prof = tf.OptimizationProfile()
    for n, v in feeds.items():
        prof.set_shape(n, v.shape, v.shape, v.shape)
    cfg = tf.BuilderConfig(device="cuda", fp16=fp16, profiles=[prof], timing_cache=cache,
                             **({knob: value} if knob else {}), **extra)
    t0 = time.perf_counter()
    eng = tf.Builder(cfg).build(zoo.get_model(name, copy=False))
    build = time.perf_counter() - t0
    ctx = eng.create_execution_context()
    first = ctx.infer(feeds)
    outs = {k: torch.empty_like(v) for k, v in first.items()}
    for n, v in list(feeds.items()) + list(outs.items()):
        if n in feeds:
            ctx.set_input_shape(n, tuple(v.shape))
        ctx.set_tensor_address(n, v)
    s = torch.cuda.Stream()
    ms = graph_time(ctx, s)
    out = next(iter(outs.values())).float()
    return ms, build, eng, out, ctx


def peer_time(case, fp16):
    """torch eager (torchvision / timm / transformers, random weights) captured in a CUDA graph."""
    sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.dirname(__import__("os").path.abspath(__file__))))
    from bench import peers
    arch, bs = CASES[case]
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = not fp16
    model = peers.torch_model(arch)
    ins = peers.torch_inputs(arch, bs)
    if fp16:
        model = peers.half_copy(model)
    args = peers.cast_inputs(ins, torch.float16 if fp16 else torch.float32)
    fn, _ = peers.run_graph(model, args)
    return peers.gpu_time(fn)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--knob", required=True, help="name=v1,v2 (BuilderConfig field)")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--fp16", action="store_true")
    ap.add_argument("--cache", default="/tmp/tf_ablation_cache.json")
    ap.add_argument("--md", default=None)
    ap.add_argument("--peers", action="store_true", help="add torch eager + CUDA graph (same precision)")
    a = ap.parse_args()
    knob, vals = a.knob.split("=")
    conv = {"true": True, "false": False}
    vals = [conv.get(v.lower(), int(v) if v.lstrip("-").isdigit() else v) for v in vals.split(",")]
    lines = [f"\n## Ablation `{knob}` ({datetime.date.today()}, {torch.cuda.get_device_name()}, torch "
             f"{torch.__version__}, {'FP16' if a.fp16 else 'TF32'})", "",
             f"Command: `python {' '.join(sys.argv)}`; ms = median of 7 replays of a CUDA graph holding 50 "
             "back-to-back inferences (CUDA events); cosine of the first output vs the first value.", "",
             "| case | " + " | ".join(f"{knob}={v} ms" for v in vals) + " | cosine | layers (first / last)"
             + (" | torch eager + CUDA graph ms |" if a.peers else " |"), "|---|" + "---|" * (len(vals) + 2 + a.peers)]
    for case in a.cases.split(","):
        res = []
        try:
            for v in vals:
                res.append(run(case, knob, v, a.fp16, a.cache))
                torch.cuda.empty_cache()
        except Exception as e:  # one case failing must not lose the others
            print(f"{case}: failed: {type(e).__name__}: {str(e)[:300]}", flush=True)
            continue
        o0, o1 = res[0][3].flatten(), res[-1][3].flatten()
        cos = float(torch.nn.functional.cosine_similarity(o0, o1, dim=0))
        row = f"| {case} | " + " | ".join(f"{r[0]:.3f}" for r in res) + \
            f" | {cos:.5f} | {len(res[0][2].plan.layers)} / {len(res[-1][2].plan.layers)} |"
        if a.peers:
            row += f" {peer_time(case, a.fp16):.3f} |"
        print(row, flush=True)
        lines.append(row)
    text = "\n".join(lines) + "\n"
    print(text)
    if a.md:
        with open(a.md, "a") as f:
            f.write(text)


if __name__ == "__main__":
    main()
