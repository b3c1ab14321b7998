"""Micro-benchmark of ResNet-50's stem on the GPU (FP16, NHWC): the 7x7/s2 conv on 3 input channels
as cuDNN runs it today vs on an input zero-padded to 4 or 8 channels, and the input preparation
(FP32 NCHW -> FP16 NHWC).

  python bench/micro_stem.py [--batch 128]
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.peers import gpu_time  # noqa: E402


def t(fn):
    """Median ms of fn (bench/peers.gpu_time: CUDA events around back-to-back calls)."""
    return gpu_time(fn)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=128)
    a = ap.parse_args()
    cl = torch.channels_last
    x32 = torch.randn(a.batch, 3, 224, 224, device="cuda")
    w = torch.randn(64, 3, 7, 7, device="cuda", dtype=torch.float16) * 0.1
    b = torch.randn(64, device="cuda", dtype=torch.float16)
    x16 = x32.half().contiguous(memory_format=cl)
    rows = {"cast fp32->fp16 (NCHW)": lambda: x32.half(),
            "NCHW fp16 -> NHWC": lambda: x32.half().contiguous(memory_format=cl)}
    for bench in (False, True):
        torch.backends.cudnn.benchmark = bench
        wc = w.contiguous(memory_format=cl)
        rows[f"conv C=3 relu (benchmark={bench})"] = lambda: torch.cudnn_convolution_relu(
            x16, wc, b, [2, 2], [3, 3], [1, 1], 1)
        for c in (4, 8):
            xp = torch.zeros(a.batch, 224, 224, c, device="cuda", dtype=torch.float16)
            xp[..., :3] = x16.permute(0, 2, 3, 1)
            xp = xp.permute(0, 3, 1, 2)
            wp = torch.zeros(64, 7, 7, c, device="cuda", dtype=torch.float16)
            wp[..., :3] = w.permute(0, 2, 3, 1)
            wp = wp.permute(0, 3, 1, 2)
            ref = torch.relu(torch.nn.functional.conv2d(x16, wc, b, 2, 3)).float()
            got = torch.cudnn_convolution_relu(xp, wp, b, [2, 2], [3, 3], [1, 1], 1).float()
            err = float((got - ref).abs().max() / ref.abs().max())
            rows[f"conv C={c} (zero-padded) relu (benchmark={bench}), rel err {err:.1e}"] = (
                lambda xp=xp, wp=wp: torch.cudnn_convolution_relu(xp, wp, b, [2, 2], [3, 3], [1, 1], 1))
        for name, fn in list(rows.items()):
            if "benchmark=" in name and f"benchmark={bench}" in name:
                print(f"{t(fn):8.3f} ms  {name}", flush=True)
    torch.backends.cudnn.benchmark = False
    y = torch.relu(torch.nn.functional.conv2d(x16, w.contiguous(memory_format=cl), b, 2, 3))
    print(f"{t(lambda: x32.half()):8.3f} ms  cast fp32->fp16 NCHW")
    print(f"{t(lambda: x32.half().contiguous(memory_format=cl)):8.3f} ms  cast + NHWC")
    print(f"{t(lambda: torch.nn.functional.max_pool2d(y, 3, 2, 1)):8.3f} ms  torch max_pool2d 3x3/s2 NHWC")
    print(f"{t(lambda: y.clone()):8.3f} ms  copy of the conv output (bandwidth reference)")


if __name__ == "__main__":
    main()
