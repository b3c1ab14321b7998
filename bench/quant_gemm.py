"""GPU micro-benchmark of the quantized GEMM tactics on BERT / ViT-sized layers, apart from the rest
of an engine: a fused.QMatMul as the passes build it (FP8 or INT8 activation and weight, per-channel
weight scales, the bias and the layer's epilogue in the expression, optionally the output Q into
FP8/INT8) run by every tactic the registry offers at opt level 3 (checked against the reference,
then timed in a CUDA graph: GPU time without launch overhead), next to the FP16 layer it replaces (one
cuBLASLt GEMM with the bias and the GELU or residual fused, as the FP16 engine runs it).

  python bench/quant_gemm.py [--modes fp8,int8] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench import peers  # noqa: E402

# name -> (M, N, K, epilogue: bias | gelu_q (bias, GELU, output Q) | residual (bias + residual))
SHAPES = {"bert_bs32_qkv": (4096, 2304, 768, "bias"), "bert_bs32_oproj": (4096, 768, 768, "residual"),
          "bert_bs32_ffn1": (4096, 3072, 768, "gelu_q"), "bert_bs32_ffn2": (4096, 768, 3072, "residual"),
          "vit_bs32_ffn1": (6304, 3072, 768, "gelu_q"), "bert_bs1_ffn1": (128, 3072, 768, "gelu_q"),
          "bert_bs1_ffn2": (128, 768, 3072, "residual")}
QT = {"fp8": ("float8e4m3fn", torch.float8_e4m3fn), "int8": ("int8", torch.int8)}


def _expr(kind, qname):
    from tensorforge import dtypes
    from tensorforge.ops.fused.expr import ExprBuilder
    b = ExprBuilder()
    y = b.op("Add", [b.input(0), b.input(1)])
    if kind == "residual":
        y = b.op("Add", [y, b.input(2)])
    if kind == "gelu_q":
        y = b.op("Div", [b.op("Gelu", [y], {"approximate": "none"}), b.const(0.05, "float32")])
        if qname == "int8":
            y = b.op("Clip", [b.op("Round", [y])], {"min": -128.0, "max": 127.0})
        else:
            y = b.op("Clip", [y], {"min": -448.0, "max": 448.0})
        y = b.op("Cast", [y], {"to": dtypes.to_onnx(qname)})
    return b.build(y)


def layer(m, n, k, kind, mode, dev, per_channel=None):
    """(LayerSpec, LayerShapes, inputs) of one quantized MatMul layer on `dev`."""
    from tensorforge.kernels import LayerShapes
    from tensorforge.runtime.plan import LayerSpec
    qname, qt = QT[mode]
    g = torch.Generator().manual_seed(0)

    def q(t):
        return t.clamp(-400, 400).to(qt) if mode == "fp8" else t.round().clamp(-127, 127).to(qt)
    x, w = q(torch.randn(m, k, generator=g) * 20), q(torch.randn(k, n, generator=g) * 20)
    if per_channel is None:  # tensorforge quantize's defaults: INT8 per channel, FP8 per tensor
        per_channel = mode == "int8"
    ws = torch.rand(n, generator=g) * 1e-3 if per_channel else torch.tensor(5e-4)
    ins = [x, w, None, ws, torch.randn(n, generator=g)]
    if kind == "residual":
        ins.append(torch.randn(m, n, generator=g))
    out_dt = qname if kind == "gelu_q" else "float16"  # as in BERT's FP8 engine: FP16 out, bias an FP16 extra
    ins[4] = ins[4].half()
    ins = [None if t is None else t.to(dev) for t in ins]
    attrs = {"x_scale": 0.01, "x_zp": 0, "w_zp": 0, "epilogue": _expr(kind, qname)}
    if out_dt == "float16":
        attrs["out_dtype"] = "float16"
    lay = LayerSpec("q", "fused.QMatMul", [f"i{j}" if t is not None else None for j, t in enumerate(ins)], ["o"],
                    attrs=attrs)
    kinds = ["activation", "weight", None, "weight", "weight", "activation"]
    descs = [None if t is None else {"dtype": qname if j < 2 else "float16" if j == 4 else "float32", "shape": list(t.shape),
                                     "kind": kinds[j]} for j, t in enumerate(ins)]
    return lay, LayerShapes.of(descs, [{"dtype": out_dt, "shape": [m, n], "kind": "activation"}]), ins


def fp16_ms(m, n, k, kind, dev):
    """The FP16 layer as the FP16 engine runs it: one cuBLASLt GEMM with the bias, GELU or residual fused."""
    x, w, b = (torch.randn(m, k, device=dev, dtype=torch.float16), torch.randn(n, k, device=dev, dtype=torch.float16),
               torch.randn(n, device=dev, dtype=torch.float16))
    r = torch.randn(m, n, device=dev, dtype=torch.float16)
    rb = r + b  # the residual with the bias in it: one cuBLASLt call with C (what the FP16 engine runs)
    fn = {"gelu_q": lambda: torch._addmm_activation(b, x, w.t(), use_gelu=True),
          "residual": lambda: torch.addmm(rb, x, w.t())}.get(kind, lambda: torch.nn.functional.linear(x, w, b))
    return peers.graph_time(fn)


def measure(name, mode, dev, per_channel=None) -> dict:
    import dataclasses

    from tensorforge import kernels
    m, n, k, kind = SHAPES[name]
    lay, shapes, ins = layer(m, n, k, kind, mode, dev, per_channel)
    ref = kernels.make_kernel(lay, 17, dev)(list(ins))[0]
    res = {"shape": name, "mode": mode, "M": m, "N": n, "K": k, "epilogue": kind,
           "fp16_ms": fp16_ms(m, n, k, kind, dev)}
    if mode == "fp8":  # cuBLASLt's FP8 GEMM alone (FP16 out, tensorwise): the floor of the scaled_mm tactics
        x8, wt = ins[0], ins[1].t().contiguous().t()
        one = torch.ones((), device=dev)
        for fast in (False, True):
            res[f"raw_scaled_mm_fp16{'_fast' if fast else ''}_ms"] = peers.graph_time(
                lambda: torch._scaled_mm(x8, wt, one, one, out_dtype=torch.float16, use_fast_accum=fast))
    for t in kernels.candidates(lay, shapes, dev):
        if kernels.level_of(t) > 3 or t["name"] == "reference":
            continue
        key = kernels.tactic_key(t)
        try:
            fn = kernels.make_kernel(dataclasses.replace(lay, tactic=t), 17, dev)
            out = [torch.empty(m, n, dtype=ref.dtype, device=dev)]
            call = (lambda: fn(list(ins), out)) if kernels.writes_in_place(t) else (lambda: fn(list(ins)))
            got = call()[0].float()
            err = float((got - ref.float()).abs().max()) / max(float(ref.float().abs().max()), 1e-6)
            res[key] = {"ms": peers.graph_time(call), "rel_err": err}
        except Exception as e:  # noqa: BLE001 - a tactic that cannot run is reported, not fatal
            res[key] = {"ms": None, "error": f"{type(e).__name__}: {str(e)[:160]}"}
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modes", default="fp8,int8")
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--json", default=None)
    ap.add_argument("--weight-scales", choices=("default", "per-channel", "per-tensor"), default="default",
                    help="default: as tensorforge quantize writes them (INT8 per channel, FP8 per tensor)")
    args = ap.parse_args(argv)
    dev = torch.device("cuda")
    pc = {"default": None, "per-channel": True, "per-tensor": False}[args.weight_scales]
    rows = [measure(s, mode, dev, pc) for mode in args.modes.split(",") for s in args.shapes.split(",")]
    print("| layer | mode | FP16 ms | best tactic | ms | FP16 ms / ms | rel err | best per family (ms; failed) |\n"
          "|---|---|---|---|---|---|---|---|")
    for r in rows:
        tac = {k: v for k, v in r.items() if isinstance(v, dict)}
        ok = {k: v for k, v in tac.items() if v.get("ms") is not None}
        best = min(ok, key=lambda k: ok[k]["ms"]) if ok else None
        fams = {}
        for k, v in tac.items():
            f = k.split(":{")[0]
            fams.setdefault(f, [None, 0])
            if v.get("ms") is None:
                fams[f][1] += 1
            elif fams[f][0] is None or v["ms"] < fams[f][0]:
                fams[f][0] = v["ms"]
        short = "; ".join(f"{f} {'-' if ms is None else format(ms, '.4f')}" + (f" ({bad} failed)" if bad else "")
                          for f, (ms, bad) in fams.items())
        b = ok.get(best, {})
        speed = r["fp16_ms"] / b["ms"] if b else float("nan")
        raw = r.get("raw_scaled_mm_fp16_ms")
        raw = "" if raw is None else f"; cuBLASLt FP8 GEMM alone {raw:.4f} (fast accum {r['raw_scaled_mm_fp16_fast_ms']:.4f})"
        print(f"| {r['shape']} | {r['mode']} | {r['fp16_ms']:.4f} | {best} | {b.get('ms', float('nan')):.4f} "
              f"| {speed:.2f} | {b.get('rel_err', float('nan')):.2g} | {short}{raw} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
