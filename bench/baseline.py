"""Foundation baseline (issue 2): zoo:resnet50 bs 32 through context.execute_async vs torch eager.

Runs on the GPU machine. Prints a markdown table and appends it to BENCHMARKS.md."""
from __future__ import annotations

import argparse
import datetime
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.dynamic import time_ms  # noqa: E402  (one CUDA-event timer for the bench scripts)


def _time(fn, stream, iters=50, warmup=10):
    """Median ms per call over 5 x `iters` back-to-back calls, timed with CUDA events."""
    return time_ms(fn, stream, iters, warmup=warmup, repeats=5)


def torch_resnet50(weights_from_onnx=None):
    import torchvision
    return torchvision.models.resnet50(weights=None).cuda().eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--out", default="BENCHMARKS.md")
    args = ap.parse_args()
    import tensorforge as tf
    from tensorforge import zoo
    from tensorforge.testing import run_ort
    bs = args.batch
    model = zoo.get_model("resnet50")
    rows = []
    x = torch.from_numpy(zoo.random_inputs("resnet50", bs, seed=1)["input"]).cuda()
    ref = run_ort(model, {"input": x.cpu().numpy()})["output"]
    for tf32 in (False, True):
        t0 = time.perf_counter()
        eng = tf.Builder(tf.BuilderConfig(device="cuda", tf32=tf32)).build(model)
        build_s = time.perf_counter() - t0
        ctx = eng.create_execution_context()
        y = torch.empty(bs, 1000, device="cuda")
        ctx.set_input_shape("input", tuple(x.shape))
        ctx.set_tensor_address("input", x)
        ctx.set_tensor_address("output", y)
        s = torch.cuda.current_stream()
        ms = _time(lambda: ctx.execute_async(s), s)
        err = float(np.abs(y.cpu().numpy() - ref).max())
        rows.append((f"tensorforge execute_async ({'TF32' if tf32 else 'FP32'})", ms, err, build_s))
        gctx = eng.create_execution_context(use_cuda_graph=True)
        for k, v in (("input", x), ("output", y)):
            gctx.set_tensor_address(k, v)
        gctx.set_input_shape("input", tuple(x.shape))
        ms = _time(lambda: gctx.execute_async(s), s)
        rows.append((f"tensorforge + CUDA graph ({'TF32' if tf32 else 'FP32'})", ms,
                     float(np.abs(y.cpu().numpy() - ref).max()), build_s))
    net = torch_resnet50()
    for tf32 in (False, True):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        with torch.no_grad():
            ms = _time(lambda: net(x), torch.cuda.current_stream())
        rows.append((f"torch eager torchvision ({'TF32' if tf32 else 'FP32'})", ms, float("nan"), 0.0))
    gpu = torch.cuda.get_device_name()
    lines = [f"\n## Foundation baseline: ResNet-50 bs {bs} ({datetime.date.today()}, {gpu}, torch {torch.__version__})",
             "", "Command: `python bench/baseline.py --batch %d`; GPU time per inference = median of 5 x 50 "
             "back-to-back calls, CUDA events. Error = max |tensorforge - ONNX Runtime CPU| on the same input." % bs,
             "", "| runner | ms / batch | img/s | max abs err vs ORT | build s |", "|---|---|---|---|---|"]
    for name, ms, err, b in rows:
        lines.append(f"| {name} | {ms:.3f} | {bs / ms * 1e3:.0f} | {err:.2e} | {b:.1f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    with open(args.out, "a") as f:
        f.write(text)


if __name__ == "__main__":
    main()
