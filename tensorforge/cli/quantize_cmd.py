"""`tensorforge quantize MODEL -o OUT.onnx`: post-training quantization to a Q/DQ ONNX model."""
from __future__ import annotations

import logging

log = logging.getLogger("tensorforge")


def add_parser(sub):
    q = sub.add_parser("quantize", help="PTQ: calibrate and write a Q/DQ ONNX model (INT8 / FP8)")
    q.add_argument("model", help="ONNX file or zoo:NAME")
    q.add_argument("-o", "--output", required=True, help="the Q/DQ ONNX file to write")
    q.add_argument("--mode", choices=("int8", "fp8"), default="int8")
    q.add_argument("--calib-data", default=None, help=".npz (input name -> array, batches along dim 0) or "
                   "a folder of images (see --preprocess); none: random data, placeholder scales")
    q.add_argument("--preprocess", default=None, help="image preprocessing: resize=256,crop=224,"
                   "mean=0.485:0.456:0.406,std=0.229:0.224:0.225,layout=NCHW,scale=255")
    q.add_argument("--calib-batch", type=int, default=1)
    q.add_argument("--calib-count", type=int, default=64, help="batches of images at most")
    q.add_argument("--calibrator", choices=("max", "entropy", "percentile", "mse"), default="entropy")
    q.add_argument("--percentile", type=float, default=99.99)
    q.add_argument("--calib-cache", default=None, help="TensorRT calibration cache (TRT-... text): its "
                   "scales, and only the nodes whose inputs it names are quantized")
    q.add_argument("--write-cache", default=None, help="also write the activation scales as a TensorRT cache")
    q.add_argument("--include", action="append", default=[], help="node name or op type regex to quantize")
    q.add_argument("--exclude", action="append", default=[], help="node name or op type regex to keep")
    q.add_argument("--high-precision-dtype", choices=("fp16", "bf16", "fp32"), default="fp16",
                   help="type of the unquantized part (weights, scales, activations); graph I/O types are kept "
                   "(ModelOpt's high_precision_dtype, default fp16)")
    q.add_argument("--bias-correction", action="store_true", help="Conv/Gemm biases absorb the mean "
                   "output shift of their quantized weights (measured on the calibration data)")
    q.add_argument("--dq-only", action="store_true", help="store weights quantized, behind a DQ only")
    q.add_argument("--weight-scales", choices=("per-channel", "per-tensor"), default=None,
                   help="weight scales per output channel (default) or one per weight (Transformer Engine's "
                        "FP8 recipe; cuBLASLt's fused FP8 GEMM on Hopper takes only these)")
    q.add_argument("-v", "--verbose", action="store_true")
    return q


def quantize_main(args) -> int:
    from ..errors import TensorforgeError
    from ..fileio import check_distinct
    from ..frontend.onnx_loader import load_model_proto
    from ..quant import load_batches, quantize, read_cache, scales_of, write_cache
    from ..quant.data import model_inputs
    check_distinct([("the input model", args.model), ("the --calib-data input", args.calib_data),
                    ("the --calib-cache input", args.calib_cache)],
                   [("-o", args.output), ("--write-cache", args.write_cache)])
    model = load_model_proto(args.model)
    cache = read_cache(args.calib_cache) if args.calib_cache else None
    if cache is not None and args.calib_data:
        raise TensorforgeError("--calib-cache and --calib-data are exclusive")
    feeds = None
    if cache is None:
        names, shapes, types = model_inputs(model)
        feeds = load_batches(args.calib_data, names, shapes, args.calib_batch, args.preprocess,
                             args.calib_count, types=types)
    out = quantize(model, args.mode, feeds, args.calibrator, args.include, args.exclude, cache, args.dq_only,
                   args.percentile, args.high_precision_dtype, args.bias_correction, args.weight_scales)
    save_model(out, args.output)
    if args.write_cache:
        write_cache(args.write_cache, scales_of(out))
    n_q = sum(n.op_type == "QuantizeLinear" for n in out.graph.node)
    print(f"wrote {args.output}: {n_q} QuantizeLinear ({args.mode}, "
          f"{'calibration cache' if cache is not None else args.calibrator}, rest in {args.high_precision_dtype})")
    return 0


def save_model(model, path: str) -> None:
    """Write an ONNX model atomically (a failed write leaves an existing file as it was); a model over
    protobuf's 2 GiB limit keeps its tensors in PATH.data beside it."""
    import os

    import onnx

    from ..fileio import atomic_write
    if model.ByteSize() < (2 << 30) - (1 << 20):
        atomic_write(path, model.SerializeToString(), "ONNX model")
        return
    onnx.save_model(model, path, save_as_external_data=True, location=os.path.basename(path) + ".data")
