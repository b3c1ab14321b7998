"""Issue 15, item 1: where the GPU time of the small real models goes. For each garden model of the
issue's classes, at its benchmark shape: forgeexec builds an FP16 engine and profiles it per layer
(--separateProfileRun --exportProfile / --exportLayerInfo into OUT), then this prints per model the
layers by time (type, tactic, ms, share) and the share of conv/GEMM layers (the optimization guides'
target: >= 90 %, everything else fused away).

  there: python3 bench/profile_models.py --cache DIR --out $OUT [names]
  here:  python3 bench/profile_models.py --device cpu --out /tmp/prof mtcnn_pnet   # tries the script"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench import garden_gpu, models  # noqa: E402
from tensorforge.cli.forgeexec.main import main as forgeexec  # noqa: E402

HEAVY = ("Conv", "ConvTranspose", "MatMul", "Gemm", "Attention", "ConvAct", "MatMulAct", "QConv", "QGemm",
         "QMatMul", "DepthwiseConv")


def heavy(layer_type: str) -> bool:
    return any(h in layer_type for h in HEAVY)


def profile(entry: dict, path: str, out: str) -> dict:
    """Run forgeexec on one model; {model, layers: [(name, type, tactic, ms)], total_ms, heavy_share}."""
    shapes = ",".join(f"{k}:{'x'.join(map(str, v['shape']))}" for k, v in entry["inputs"].items() if v["shape"])
    prof, info = os.path.join(out, f"{entry['name']}.profile.json"), os.path.join(out, f"{entry['name']}.layers.json")
    args = [f"--onnx={path}", "--fp16", "--separateProfileRun", "--iterations=50", f"--exportProfile={prof}",
            f"--exportLayerInfo={info}", "--profilingVerbosity=detailed"]  # the GPU when there is one
    if shapes:
        args.append(f"--shapes={shapes}")
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        rc = forgeexec(args)
    if rc != 0 or not os.path.exists(prof):
        return {"model": entry["name"], "error": f"forgeexec exit {rc}: {log.getvalue().strip().splitlines()[-1:]}"}
    rows = json.load(open(prof))
    layers = json.load(open(info)) if os.path.exists(info) else {}
    kinds = {L.get("Name"): (L.get("LayerType", ""), L.get("TacticName", L.get("Tactic", "")))
             for L in (layers.get("Layers", []) if isinstance(layers, dict) else [])}
    out_rows = []
    for r in rows:
        if not isinstance(r, dict) or "name" not in r:
            continue
        t, tac = kinds.get(r["name"], ("", ""))
        out_rows.append((r["name"], t, tac, float(r.get("averageMs", 0.0))))
    total = sum(r[3] for r in out_rows) or 1e-9
    share = sum(r[3] for r in out_rows if heavy(r[1] or r[0])) / total
    return {"model": entry["name"], "layers": out_rows, "total_ms": total, "heavy_share": share}


def text(res: dict, top: int) -> str:
    if "error" in res:
        return f"{res['model']}: {res['error']}\n"
    lines = [f"{res['model']}: {len(res['layers'])} layers, {res['total_ms']:.3f} ms (sum of layer times), "
             f"conv/GEMM share {100 * res['heavy_share']:.1f} %"]
    for name, t, tac, ms in sorted(res["layers"], key=lambda r: -r[3])[:top]:
        lines.append(f"  {ms:8.4f} ms {100 * ms / res['total_ms']:5.1f} %  {t[:24]:24s} {str(tac)[:28]:28s} {name[:70]}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*")
    ap.add_argument("--cache")
    ap.add_argument("--out", default="/tmp/profile_models")
    ap.add_argument("--device", default="cuda", help="cpu: the manifest's small test shapes (forgeexec runs where it can)")
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args(argv)
    if args.cache:
        os.environ["TF_GARDEN_CACHE"] = os.path.abspath(args.cache)
    os.environ.setdefault("TF_GARDEN_OFFLINE", "1")
    os.makedirs(args.out, exist_ok=True)
    from types import SimpleNamespace
    todo, missing = garden_gpu.selected(SimpleNamespace(names=args.names or models.CLASSES,
                                                        test_shapes=args.device == "cpu"))
    results = [profile(e, p, args.out) for e, p in todo]
    report = "".join(text(r, args.top) for r in results) + "".join(f"missing: {m}\n" for m in missing)
    print(report)
    with open(os.path.join(args.out, "profile_models.txt"), "w") as f:
        f.write(report)
    return 0 if results and all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
