"""--int8 / --fp8 / --best / --calib as trtexec: a Q/DQ model builds strongly typed (its Q/DQ decide the
precisions; with --fp16 / --bf16 / --best its FP32 non-Q/DQ part may run in the reduced type); a model
without Q/DQ is quantized first (scales from --calib, else placeholders)."""
from __future__ import annotations


def apply(proto, opts, log):
    """The model to build (quantized when the flags ask for it); sets opts.stronglyTyped for Q/DQ models."""
    from ...quant import has_qdq, quantize, read_cache
    wants = opts.int8 or opts.fp8 or opts.best
    if has_qdq(proto):
        low = "fp16" if opts.fp16 or opts.best else "bf16" if opts.bf16 else None
        if low and not opts.stronglyTyped:  # TensorRT's weakly typed mode with Q/DQ
            log.info(f"The model has Q/DQ nodes: they decide the quantized layers; the non-Q/DQ part follows --{low}.")
            return proto
        if wants or low:
            log.warn("The model has Q/DQ nodes: the build is strongly typed (precisions come from the Q/DQ "
                        "nodes); precision flags are ignored.")
        opts.stronglyTyped = True
        return proto
    if not wants or opts.stronglyTyped:
        return proto
    mode = "fp8" if opts.fp8 else "int8"
    if opts.calib:
        cache = read_cache(opts.calib)
        log.info(f"--{mode}: quantizing the model with the scales of calibration cache {opts.calib} "
                 f"({len(cache)} tensors).")
        q = quantize(proto, mode, cache=cache)
    else:
        from ...quant.data import model_inputs, random_batches
        log.warn(f"--{mode} on a model without Q/DQ: quantizing with placeholder scales (random calibration "
                    "data); the engine is for performance measurement only, its outputs are not meaningful.")
        feeds = random_batches(*model_inputs(proto), n=1)
        q = quantize(proto, mode, feeds, "max")
    opts.stronglyTyped = True
    return q


def report(engine, opts, log) -> None:
    """--quantReport=FILE (JSON) and, with --verbose, the same report in the log."""
    want = getattr(opts, "quantReport", None)
    if not (want or opts.verbose) or not ("engine_choice" in engine.plan.meta or any(
            l.type.startswith("fused.Q") or "Quantize" in " ".join(l.origin or []) for l in engine.plan.layers)):
        return
    import json

    from ...builder.quant_report import engine_line, quant_report
    rep = quant_report(engine)
    if engine_line(rep):
        log.info(f"Quantization: {engine_line(rep)}")
    if want:
        from ...fileio import atomic_write
        atomic_write(want, json.dumps(rep, indent=1).encode("utf-8"), "quantization report")
        log.info(f"Quantization report written to {want}: {len(rep['unfused'])} unfused Q/DQ, "
                 f"{len(rep['layers'])} quantized layers")
    if opts.verbose:
        for u in rep["unfused"]:
            log.verb(f"[quant] unfused {', '.join(u['qdq'])}: {u['reason']}")
        for lay in rep["layers"]:
            log.verb(f"[quant] {lay['layer']}: {lay['precision']} {lay['tactic']} ms={lay['ms']} fp16_ms={lay['fp16_ms']}")
