"""Where the GPU time goes, kernel by kernel: builds a case (FP16 by default), replays its CUDA graph
under torch.profiler (CUPTI sees the kernels inside graphs) and prints, per inference, each kernel
name's count and total time, biggest first.

  python bench/kernels.py --cases resnet50_bs128,bert_base_bs1 [--top 30] [--knob name=value]
"""
from __future__ import annotations

import argparse
import collections
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.ablation import capture, run  # noqa: E402


def kernel_table(ctx, stream, iters=20):
    """{kernel name: (launches, total us)} per inference, from one profiled graph replay."""
    from torch.profiler import ProfilerActivity, profile
    g = capture(ctx, stream, iters)
    with torch.cuda.stream(stream):
        g.replay()
        stream.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            g.replay()
            stream.synchronize()
    agg = collections.defaultdict(lambda: [0, 0.0])
    for e in prof.events():
        if e.device_type == torch.autograd.DeviceType.CUDA and e.device_time > 0:
            a = agg[e.name]
            a[0] += 1
            a[1] += e.device_time
    return {k: (v[0] / iters, v[1] / iters) for k, v in agg.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default="resnet50_bs128,vit_b16_bs32,bert_base_bs1")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--fp32", action="store_true")
    ap.add_argument("--knob", action="append", default=[], help="BuilderConfig name=value (repeatable)")
    ap.add_argument("--cache", default="/tmp/tf_kernels_cache.json")
    ap.add_argument("--cudnn-benchmark", action="store_true", help="torch.backends.cudnn.benchmark = True")
    a = ap.parse_args()
    torch.backends.cudnn.benchmark = a.cudnn_benchmark
    extra = {}
    for k in a.knob:
        n, v = k.split("=")
        extra[n] = {"true": True, "false": False}.get(v.lower(), int(v) if v.lstrip("-").isdigit() else v)
    for case in a.cases.split(","):
        ms, build, eng, _, ctx = run(case, None, None, not a.fp32, a.cache, **extra)
        table = kernel_table(ctx, torch.cuda.Stream())
        tot = sum(t for _, t in table.values())
        n = sum(c for c, _ in table.values())
        print(f"\n== {case}: graph {ms:.3f} ms/inference, build {build:.1f} s, {len(eng.plan.layers)} layers, "
              f"{n:.0f} kernels, kernel time {tot / 1000:.3f} ms", flush=True)
        for name, (c, t) in sorted(table.items(), key=lambda kv: -kv[1][1])[:a.top]:
            print(f"{t:9.1f} us {100 * t / tot:5.1f}%  x{c:<5.0f} {name[:150]}")
        chosen = collections.Counter((lay.type, f"{(lay.tactic or {}).get('source')}:{(lay.tactic or {}).get('name')}")
                                     for lay in eng.plan.layers)
        print("chosen tactics: " + ", ".join(f"{t} {k} x{c}" for (t, k), c in sorted(chosen.items())))
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
