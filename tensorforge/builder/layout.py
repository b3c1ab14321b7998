"""Activation layouts: where the chosen tactics run NHWC, keep the activations between them NHWC.

A tensor is stored NHWC (channels-last bytes in its NCHW-shaped arena buffer) when its producer
runs NHWC (a channels-last conv tactic, or a pooling / pointwise layer whose input is NHWC) and
every consumer is an aten kernel layer, which then reads it through a channels-last view (tactic
params in_nhwc / out_nhwc, applied by kernels/aten). Graph outputs, view layers (reshapes alias
the bytes) and other tactic sources always see NCHW. The conversion at a chain's border is fused
into the layer there (no separate reformat layer); the cost model is the tactic timing itself:
NHWC tactics are timed with NHWC inputs and outputs, as inside a chain."""
from __future__ import annotations

import logging

from .. import dtypes
from .autotune import wants_channels_last

log = logging.getLogger("tensorforge")
# layer types that run as fast on channels-last views and keep their input's layout
PROPAGATE = frozenset("""MaxPool AveragePool Relu LeakyRelu Sigmoid Tanh Clip HardSwish HardSigmoid Add Sub Mul
    Div Sum Max Min BatchNormalization Concat Resize fused.Pointwise PRelu Elu Selu Gelu Erf
    fused.SqueezeExcite fused.Concat""".split())
QUANTIZED_INTS = ("int8", "uint8")  # the activations between quantized layers (float8 ones are floats)


def plan_layouts(plan) -> int:
    """Mark NHWC activations in the layers' tactic params; returns how many tensors are NHWC."""
    consumers: dict[str, list] = {}
    for lay in plan.layers:
        for n in lay.inputs:
            if n:
                consumers.setdefault(n, []).append(lay)
    banned: set = set()
    while True:
        nhwc = _forward(plan, banned)
        bad = {t for t in nhwc if not all(_accepts(c) for c in consumers.get(t, []))}
        if not bad:
            break
        banned |= bad
    for lay in plan.layers:  # new params dicts: tactics of identical layers may share one
        p = {k: v for k, v in (lay.tactic.get("params") or {}).items() if k not in ("in_nhwc", "out_nhwc")}
        lay.tactic = {**lay.tactic, "params": p}
        ins = [i for i, n in enumerate(lay.inputs) if n in nhwc]
        outs = [i for i, n in enumerate(lay.outputs) if n in nhwc]
        if ins:
            p["in_nhwc"] = ins
        if outs:
            p["out_nhwc"] = outs
    if nhwc:
        log.info("Layout: %d activation tensors kept channels-last (NHWC) between layers", len(nhwc))
    return len(nhwc)


def _forward(plan, banned) -> set:
    """Tensors produced NHWC given the banned set, in execution order."""
    nhwc: set = set()
    for lay in plan.layers:
        if not _accepts(lay):
            continue
        runs_nhwc = wants_channels_last(lay.tactic) or (
            lay.type in PROPAGATE and bool(lay.inputs) and lay.inputs[0] in nhwc)
        if runs_nhwc:
            nhwc |= {o for o in lay.outputs if o not in banned and _eligible(plan.tensors[o])}
    return nhwc


def _accepts(lay) -> bool:
    """Layers that can read and write channels-last views: aten kernels, and kernels of other
    sources whose tactic says so (param nhwc_ok: the source applies in_nhwc / out_nhwc)."""
    return lay.mode == "kernel" and (lay.tactic.get("source") == "aten"
                                     or bool((lay.tactic.get("params") or {}).get("nhwc_ok")))


def _eligible(t) -> bool:
    """4-D float or 8-bit quantized activations with planned buffers, not spatially 1x1 (both layouts
    coincide)."""
    return (t.kind == "activation" and not t.dynamic and len(t.shape) == 4
            and (dtypes.is_float(t.dtype) or t.dtype in QUANTIZED_INTS) and not (t.shape[2] == 1 and t.shape[3] == 1))
