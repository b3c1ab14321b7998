"""The quantization report as text lines (tensorforge inspect)."""
from __future__ import annotations


def _ms(v):
    return "-" if v is None else f"{v:.4f} ms"


def quant_lines(engine) -> list:
    from ..builder.quant_report import engine_line, quant_report
    rep = quant_report(engine)
    out = [f"---- Quantization: {len(rep['layers'])} quantized layer(s), {len(rep['unfused'])} unfused Q/DQ ----"]
    if engine_line(rep):
        out.append(f"  {engine_line(rep)}")
    out += [f"  unfused {', '.join(u['qdq'])}: {u['reason']}" for u in rep["unfused"]]
    out += [f"  {lay['layer']} | {lay['precision']} | {lay['tactic']} | {_ms(lay['ms'])} | FP16 form {_ms(lay['fp16_ms'])}"
            for lay in rep["layers"]]
    return out
