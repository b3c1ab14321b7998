"""ONNX Runtime as the peer of an ONNX model: FP32 and its FP16 converter, with and without CUDA graph,
on the CUDA EP (or the CPU EP, to try the script on a CPU).

GPU time per inference: the session computes on torch's current stream (`user_compute_stream`) and
runs without its end-of-run synchronize (`disable_synchronize_execution_providers`), inputs and outputs
bound once to device buffers (IO binding), so CUDA events around back-to-back runs time the GPU work the
same way as our engines' (bench/peers.gpu_time). Where ORT refuses those options, the row says so and
gives the host wall time of synchronized runs instead."""
from __future__ import annotations

import os
import time

import numpy as np

CONFIGS = (("fp32", False), ("fp32", True), ("fp16", False), ("fp16", True))  # (precision, cuda graph)


def fp16_model(path: str, out_path: str) -> str:
    """ORT's own FP16 converter (onnxruntime.transformers.float16, I/O kept FP32) applied to path."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16
    m = convert_float_to_float16(onnx.load(path), keep_io_types=True)
    onnx.save(m, out_path)
    return out_path


def _session(path: str, device: str, graph: bool):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if device == "cpu":
        return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    import torch  # first: its CUDA 13 / cuDNN libraries are the ones the GPU wheel of ORT loads
    if hasattr(ort, "preload_dlls"):  # ORT >= 1.21: load CUDA / cuDNN from the nvidia-* wheels torch uses
        ort.preload_dlls()
    opts = {"device_id": str(torch.cuda.current_device()),
            "user_compute_stream": str(torch.cuda.current_stream().cuda_stream)}
    if graph:
        opts["enable_cuda_graph"] = "1"
    return ort.InferenceSession(path, so, providers=[("CUDAExecutionProvider", opts)])


def _bound_run(sess, feed: dict, device: str, shapes_from):
    """(run(), outputs()): every input and output bound to a fixed buffer on the session's device;
    shapes_from: a session without CUDA graph whose plain run gives the output shapes (a graph session
    must see only the bound buffers: it captures the addresses of its first runs)."""
    import onnxruntime as ort
    io = sess.io_binding()
    dev = "cuda" if device != "cpu" else "cpu"
    keep = []
    for name, v in feed.items():
        val = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(v), dev, 0)
        keep.append(val)
        io.bind_ortvalue_input(name, val)
    first = shapes_from.run(None, feed)  # output shapes and types for the fixed output buffers
    outs = []
    for o, arr in zip(sess.get_outputs(), first):
        val = ort.OrtValue.ortvalue_from_shape_and_type(list(arr.shape), arr.dtype, dev, 0)
        outs.append(val)
        io.bind_ortvalue_output(o.name, val)
    ro = ort.RunOptions()
    if device != "cpu":
        ro.add_run_config_entry("disable_synchronize_execution_providers", "1")

    def run():
        sess.run_with_iobinding(io, ro)

    def outputs():
        return {o.name: v.numpy() for o, v in zip(sess.get_outputs(), outs)}
    return run, outputs, keep


def wall_ms(fn, iters: int = 20) -> float:
    """Median host wall time of one call (ms) after two warm-up calls."""
    fn(), fn()
    ts = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts) * 1e3)


def time_config(path: str, feed: dict, device: str, graph: bool) -> tuple[float, str, dict]:
    """(ms per inference, how it was timed, outputs) of one ORT configuration."""
    if device == "cpu":
        sess = _session(path, device, graph)
        run, outputs, _keep = _bound_run(sess, feed, device, sess)
        return wall_ms(run, iters=5), "cpu wall", outputs()
    import torch

    from bench.peers import gpu_time
    stream = torch.cuda.Stream()  # a stream of its own: no capture is legal on the legacy default stream
    with torch.cuda.stream(stream):
        sess = _session(path, device, graph)
        run, outputs, _keep = _bound_run(sess, feed, device, _session(path, device, False) if graph else sess)
        run()
        torch.cuda.synchronize()
        ms = gpu_time(run)
        torch.cuda.synchronize()
        return ms, "CUDA events", outputs()


def peer_rows(path: str, feed: dict, device: str, work: str, ref: dict | None = None, compare=None) -> list:
    """One row per configuration: {runner, precision, graph, ms, timing, cosine...} or {error}."""
    rows = []
    f16 = None
    for prec, graph in CONFIGS:
        if device == "cpu" and graph:
            continue  # CUDA graphs are a CUDA EP feature
        row = {"runner": "onnxruntime", "precision": prec, "graph": graph}
        try:
            if prec == "fp16" and f16 is None:
                f16 = fp16_model(path, os.path.join(work, "model_fp16.onnx"))
            ms, how, out = time_config(f16 if prec == "fp16" else path, feed, device, graph)
            row.update(ms=round(ms, 4), timing=how)
            if ref is not None and compare is not None:
                row["max_rel"], row["cosine"], row["top1"], _ = compare(out, ref)
        except Exception as e:  # noqa: BLE001 - a configuration ORT refuses is a result
            row["error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}"
        rows.append(row)
    return rows


def providers() -> list:
    import onnxruntime as ort
    return ort.get_available_providers()
