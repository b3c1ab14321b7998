"""Quantization accuracy on real weights, measured on the CPU through tensorforge's reference path
(the engine built on CPU runs every layer's reference; GPU kernels are not involved).

EfficientNet-Lite0 (ImageNet weights): INT8 PTQ with `tensorforge.quant` calibrated on random crops of
natural images; top-1 agreement with FP32 on other crops. MiniLM (BERT 6 x 384): FP8 and INT8 PTQ,
mean embedding cosine vs FP32 over generated sentences.
Usage: python3 bench/quant_accuracy.py [--crops 500] [--sentences 256] [--calib 64] [--only effnet|minilm]"""
from __future__ import annotations

import argparse
import io
import os
import sys
import time

import numpy as np
import onnx
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from quant_models import efficientnet_lite0, natural_images, random_crops  # noqa: E402


def export(model, args, names, dyn) -> onnx.ModelProto:
    """torch -> ONNX (TorchScript exporter, opset 17), checked against eager torch."""
    f = io.BytesIO()
    torch.onnx.export(model, args, f, input_names=names, output_names=["y"], opset_version=17,
                      dynamic_axes=dyn, dynamo=False)
    return onnx.load_from_string(f.getvalue())


def engine(model):
    from tensorforge import Builder, BuilderConfig
    return Builder(BuilderConfig(device="cpu")).build(model).create_execution_context()


def run(ctx, feeds: dict, batch: int) -> np.ndarray:
    n = len(next(iter(feeds.values())))
    outs = []
    for i in range(0, n, batch):
        out = ctx.infer({k: v[i:i + batch] for k, v in feeds.items()})
        outs.append(next(iter(out.values())).float().numpy())
    return np.concatenate(outs)


def effnet(n_eval: int, n_calib: int, calibrator: str = "entropy", exclude=(), bias_correction=False,
           high_precision="fp16", percentile=99.99) -> dict:
    from tensorforge.quant import quantize
    m = efficientnet_lite0()
    x0 = torch.zeros(2, 3, 224, 224)
    fp32 = export(m, (x0,), ["x"], {"x": {0: "n"}, "y": {0: "n"}})
    imgs = natural_images()
    calib = random_crops(imgs, n_calib, seed=1)
    ev = random_crops(imgs, n_eval, seed=2)  # other crops (another seed) than calibration's
    q = quantize(fp32, "int8", [{"x": calib[i:i + 8]} for i in range(0, n_calib, 8)], calibrator, exclude=exclude,
                 percentile=percentile, high_precision=high_precision, bias_correction=bias_correction)
    t = time.time()
    with torch.no_grad():
        eager = m(torch.from_numpy(ev[:8])).numpy()
    ref = run(engine(fp32), {"x": ev}, 50)
    assert np.abs(ref[:8] - eager).max() < 1e-3 * np.abs(eager).max()  # the export matches torch
    got = run(engine(q), {"x": ev}, 50)
    agree = float((got.argmax(1) == ref.argmax(1)).mean())
    return {"model": "EfficientNet-Lite0", "mode": "int8", "calibrator": calibrator, "percentile": percentile,
            "exclude": list(exclude), "bias_correction": bias_correction, "high_precision": high_precision,
            "calib_crops": n_calib,
            "eval_crops": n_eval, "top1_agreement": agree, "n_q": sum(n.op_type == "QuantizeLinear" for n in q.graph.node),
            "seconds": round(time.time() - t, 1)}


def effnet_fp16(n_eval: int) -> dict:
    """The floor of the FP16 rest: an FP16 engine of the FP32 model (no quantization) on the same crops."""
    from tensorforge import Builder, BuilderConfig
    m = efficientnet_lite0()
    fp32 = export(m, (torch.zeros(2, 3, 224, 224),), ["x"], {"x": {0: "n"}, "y": {0: "n"}})
    ev = random_crops(natural_images(), n_eval, seed=2)
    ref = run(engine(fp32), {"x": ev}, 50)
    got = run(Builder(BuilderConfig(device="cpu", fp16=True)).build(fp32).create_execution_context(), {"x": ev}, 50)
    cos = (got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
    return {"model": "EfficientNet-Lite0", "mode": "fp16 (no quantization)", "eval_crops": n_eval,
            "top1_agreement": float((got.argmax(1) == ref.argmax(1)).mean()), "mean_logit_cosine": float(cos.mean())}


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--crops", type=int, default=500)
    p.add_argument("--calib", type=int, default=64)
    p.add_argument("--sentences", type=int, default=256)
    p.add_argument("--calibrator", default="entropy")
    p.add_argument("--percentile", type=float, default=99.99)
    p.add_argument("--exclude", action="append", default=[], help="node name / op type regex kept in high precision")
    p.add_argument("--minilm-exclude", action="append", default=[])
    p.add_argument("--minilm-calibrator", default="max")
    p.add_argument("--bias-correction", action="store_true")
    p.add_argument("--high-precision", default="fp16", choices=("fp16", "fp32"))
    p.add_argument("--only", choices=("effnet", "minilm"))
    p.add_argument("--fp16-only", action="store_true", help="EfficientNet: an FP16 engine, no quantization")
    a = p.parse_args(argv)
    if a.fp16_only:
        print(effnet_fp16(a.crops), flush=True)
        return
    if a.only in (None, "effnet"):
        print(effnet(a.crops, a.calib, a.calibrator, a.exclude, a.bias_correction, a.high_precision, a.percentile),
              flush=True)
    if a.only in (None, "minilm"):
        from quant_minilm import minilm_accuracy
        for mode in ("fp8", "int8"):
            print(minilm_accuracy(mode, a.sentences, calibrator=a.minilm_calibrator, exclude=a.minilm_exclude,
                                  high_precision=a.high_precision), flush=True)


if __name__ == "__main__":
    main()
