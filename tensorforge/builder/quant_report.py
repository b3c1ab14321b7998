"""The quantization report of a built engine: every Q/DQ that did not fuse into a computing layer (with
the reason), and per quantized layer its precision, tactic and time next to its FP16 form's time."""
from __future__ import annotations

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
LOW = ("int8", "uint8", "float8e4m3fn", "float8e4m3fnuz", "float8e5m2", "float8e5m2fnuz")


def _precision(plan, lay) -> str:
    types = [plan.tensors[t].dtype for t in list(lay.inputs) + list(lay.outputs) if t and t in plan.tensors]
    low = [t for t in types if t in LOW]
    if lay.type in ("fused.QConv", "fused.QGemm", "fused.QMatMul") and lay.inputs[1] in plan.tensors:
        return "fp8" if plan.tensors[lay.inputs[1]].dtype.startswith("float8") else "int8"
    if low:
        return "fp8" if any(t.startswith("float8") for t in low) else "int8"
    return lay.precision


def _unfused_reason(plan, lay, producers, consumers) -> str:
    src = [producers.get(t) for t in lay.inputs if t]
    if any(t in plan.inputs for t in lay.inputs if t):
        return "quantizes a graph input: there is no layer before it to fuse into"
    users = consumers.get(lay.outputs[0], [])
    if any(o in plan.outputs for o in lay.outputs):
        return "dequantizes a graph output: there is no layer after it to fuse into"
    names = ", ".join(f"{u.type} '{u.name}'" for u in users[:3]) or "none"
    prod = ", ".join(f"{p.type} '{p.name}'" for p in src if p is not None) or "none"
    return (f"neither its producer ({prod}) nor its consumers ({names}) absorb it: not a weighted, "
            "quantizable or pointwise layer, or its output is read by several layers")


def quant_report(engine) -> dict:
    """{'unfused': [...], 'layers': [...]} of an engine built from a Q/DQ model (empty lists otherwise), and
    'engine': the whole-engine check against the FP16 form (builder.fp16_form) where it ran."""
    plan = engine.plan
    producers = {o: lay for lay in plan.layers for o in lay.outputs}
    consumers: dict = {}
    for lay in plan.layers:
        for t in lay.inputs:
            if t:
                consumers.setdefault(t, []).append(lay)
    times = plan.meta.get("quant_times", {})
    unfused, layers = [], []
    for lay in plan.layers:
        origin = list(lay.origin or [])
        qdq = [o for o in origin if o.endswith(QDQ_OPS) or "QuantizeLinear" in o or "DequantizeLinear" in o]
        if qdq and len(qdq) == len(origin):
            unfused.append({"layer": lay.name, "qdq": qdq, "reason": _unfused_reason(plan, lay, producers, consumers)})
        prec = _precision(plan, lay)
        if prec in ("int8", "fp8") or lay.type.startswith("fused.Q"):
            t = times.get(lay.name, {})
            chosen = lay.tactic.get("name", "reference")
            layers.append({"layer": lay.name, "type": lay.type, "precision": "fp16" if chosen.startswith("fp16_form") else prec,
                           "tactic": chosen,
                           "ms": next((ms for k, ms in t.items() if chosen in k), None),
                           "fp16_ms": next((ms for k, ms in t.items() if "fp16_form" in k), None)})
    rep = {"unfused": unfused, "layers": layers}
    if "engine_choice" in plan.meta:  # the whole engine against the FP16 engine without the Q/DQ (fp16_form)
        rep["engine"] = plan.meta["engine_choice"]
    return rep


def engine_line(rep: dict) -> str | None:
    """One line on the whole-engine check, or None when it did not run."""
    c = rep.get("engine")
    if not c:
        return None
    kept = "the FP16 engine without the Q/DQ" if c["chosen"] == "fp16_form" else "the quantized engine"
    return f"engine: {kept} ({c.get('why', '')})"
