"""PTQ: calibrate activation ranges with ONNX Runtime, place Q/DQ (ModelOpt's defaults), write the model."""
from __future__ import annotations

import logging

import numpy as np
import onnx

from ..errors import TensorforgeError
from . import ortrun
from .biascorr import bias_correct
from .calib import CALIBRATORS, Collector
from .highprec import LOW, MIN_OPSET as LOW_OPSET, to_high_precision
from .insert import insert_qdq
from .placement import place

log = logging.getLogger("tensorforge")
MIN_OPSET = {"int8": 13, "fp8": 19}
# weight scales by mode: INT8 per output channel (TensorRT's and ModelOpt's rule); e4m3 one per weight
# (Transformer Engine's and ModelOpt's torch FP8 recipe), the only form cuBLASLt's FP8 GEMM with a fused
# epilogue takes on Hopper (it refused per-vector scales there: kernels/aten/scaled_lt.py). e4m3's
# range makes one scale enough: MiniLM-L6 FP8 (max, 256 sentences) mean embedding cosine 0.99640 per
# tensor vs 0.99635 per channel (bench/quant_minilm.py, session 10)
WEIGHT_SCALES = {"int8": "per-channel", "fp8": "per-tensor"}


def has_qdq(model) -> bool:
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)


def _opset(model) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)


def _with_opset(model, need: int):
    if _opset(model) >= need:
        return model
    from onnx import version_converter
    return version_converter.convert_version(model, need)


def collect(model, tensors, feeds) -> dict:
    """{tensor: Collector} over the calibration feeds (ONNX Runtime on CPU, tensors as extra outputs)."""
    sess = ortrun.session(model, tensors)
    names = list(tensors)
    cols = {t: Collector() for t in names}
    for feed in feeds:
        for t, v in zip(names, ortrun.run(sess, names, feed)):
            cols[t].add(v)
    return cols


def quantize(model, mode: str = "int8", feeds=None, calibrator: str = "entropy", include=(), exclude=(),
             cache: dict | None = None, dq_only: bool = False, percentile: float = 99.99,
             high_precision: str = "fp16", bias_correction: bool = False, weight_scales: str | None = None):
    """The Q/DQ model of `model`: feeds are calibration inputs, or cache {tensor: scale} (TensorRT);
    its unquantized part in `high_precision` (fp16 | bf16 | fp32), graph I/O types kept; bias_correction:
    Conv/Gemm biases absorb the mean shift of their quantized weights (needs calibration feeds);
    weight_scales: per-channel | per-tensor (default: by mode, WEIGHT_SCALES: INT8 per channel, FP8 per tensor)."""
    if mode not in ("int8", "fp8"):
        raise TensorforgeError(f"--mode must be int8 or fp8, not '{mode}'")
    weight_scales = weight_scales or WEIGHT_SCALES[mode]
    if weight_scales not in ("per-channel", "per-tensor"):
        raise TensorforgeError(f"--weight-scales must be per-channel or per-tensor, not '{weight_scales}'")
    if calibrator not in CALIBRATORS:
        raise TensorforgeError(f"unknown calibrator '{calibrator}' ({', '.join(CALIBRATORS)})")
    if high_precision not in ("fp32", *LOW):
        raise TensorforgeError(f"--high-precision-dtype must be fp16, bf16 or fp32, not '{high_precision}'")
    feeds = list(feeds) if bias_correction and feeds is not None else feeds  # read twice
    if bias_correction and (dq_only or not feeds):
        raise TensorforgeError("bias correction needs calibration data and Q -> DQ weights (not --dq-only)")
    if has_qdq(model):
        log.warning("quantize: the model already has Q/DQ nodes; returned unchanged")
        return model
    model = _with_opset(model, max(MIN_OPSET[mode], LOW_OPSET if high_precision != "fp32" else 0))
    model = onnx.shape_inference.infer_shapes(model)
    plan = place(model, mode, include, exclude, only_tensors=set(cache) if cache is not None else None)
    for name, why in plan.skipped.items():
        log.info("quantize: %s stays in high precision: %s", name, why)
    tensors = list(dict.fromkeys(t for t, _, _ in plan.acts))
    if cache is not None:
        amax = {t: cache[t] * 127.0 for t in tensors if t in cache}
    else:
        if not feeds:
            raise TensorforgeError("quantize: no calibration batches")
        cols = collect(model, tensors, feeds)
        amax = {t: CALIBRATORS[calibrator](c, percentile=percentile, qmax=127.0) for t, c in cols.items()}
    log.info("quantize: %d activations and %d weights quantized (%s, %s)", len(amax), len(plan.weights), mode,
             calibrator if cache is None else "calibration cache")
    out = insert_qdq(model, plan, amax, mode, dq_only, weight_scales == "per-tensor")
    if bias_correction:
        out = bias_correct(out, feeds)
    del out.graph.value_info[:]
    return to_high_precision(out, high_precision)


def scales_of(model) -> dict:
    """{tensor: scale} of the per-tensor activation Qs of a Q/DQ model (to write a TensorRT cache); a Q of a
    Cast (FP16 model: the Cast of a graph input) names the Cast's input."""
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    casts = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "Cast"}
    return {casts.get(n.input[0], n.input[0]): float(np.asarray(inits[n.input[1]]).reshape(-1)[0])
            for n in model.graph.node
            if n.op_type == "QuantizeLinear" and n.input[1] in inits and inits[n.input[1]].size == 1}
