"""Time of a model with an `If` decided at run time (issue 13's closing note) against the same model
with the condition fixed at build time, and ONNX Runtime (CPU here; its CUDA EP only where installed).

Models: zoo:NAME (default zoo:resnet50): the zoo network, then an If on a run-time bool input
`use_softmax` (then: Softmax over the classes, else: the logits), so the network stays in the CUDA-graph
prefix and only the If runs eagerly after it (one host sync reads the condition); or garden:NAME, a garden
model from the cache (--cache / TF_GARDEN_CACHE), e.g. garden:silero_vad, whose whole network sits in an
If on its sample-rate input `sr` (fold it with --flag sr).

Rows (each checked against ONNX Runtime CPU FP32 on the same inputs, cosine):
  run-time If, use_cuda_graph   the context's graph prefix + the eager rest (host wall clock, synchronized)
  run-time If, eager            every launch eager (host wall clock)
  If folded at build            the flag input replaced by its value: the If disappears at build
                                (CUDA graph replay timed with CUDA events, and host wall clock)
  ONNX Runtime <EP>             CPU EP, and CUDA EP when onnxruntime-gpu is installed
  PYTHONUNBUFFERED=1 python3 bench/if_runtime.py [zoo:resnet50] [--fp16] [--json $OUT/if.json]
--device cpu runs everything on the CPU (to try the script; times are then host times).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.garden_time import time_engine, wall_ms  # noqa: E402
from tests.garden.check import cosine, first_line  # noqa: E402

FLAG = "use_softmax"


def with_runtime_if(m: onnx.ModelProto) -> onnx.ModelProto:
    """The model's first output post-processed by If(use_softmax): Softmax(logits) or the logits."""
    m = onnx.ModelProto.FromString(m.SerializeToString())
    g = m.graph
    out = onnx.ValueInfoProto()
    out.CopyFrom(g.output[0])
    then = helper.make_graph([helper.make_node("Softmax", [out.name], ["if_then_out"], axis=-1)], "then", [],
                             [_like(out, "if_then_out")])
    other = helper.make_graph([helper.make_node("Identity", [out.name], ["if_else_out"])], "else", [],
                              [_like(out, "if_else_out")])
    g.node.append(helper.make_node("If", [FLAG], ["if_out"], then_branch=then, else_branch=other, name="post_if"))
    g.input.append(helper.make_tensor_value_info(FLAG, TensorProto.BOOL, []))
    del g.output[:]
    g.output.append(_like(out, "if_out"))
    return m


def _like(vi, name: str):
    """A copy of value info `vi` (type and shape) under another name."""
    v = onnx.ValueInfoProto()
    v.CopyFrom(vi)
    v.name = name
    return v


def fold_input(m: onnx.ModelProto, name: str, value: np.ndarray) -> onnx.ModelProto:
    """The model with graph input `name` replaced by a constant of `value` (the If folds at build)."""
    m = onnx.ModelProto.FromString(m.SerializeToString())
    keep = [i for i in m.graph.input if i.name != name]
    if len(keep) == len(m.graph.input):
        raise SystemExit(f"--flag {name}: not an input of the model ({[i.name for i in m.graph.input]})")
    del m.graph.input[:]
    m.graph.input.extend(keep)
    m.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
    return m


def model_and_feed(spec: str, batch: int, flag: str | None):
    """(model with the run-time If, feed, the flag input's name)."""
    if spec.startswith("garden:"):
        from tests.garden.fetch import model_by_name, model_path
        from tests.garden.inputs import feed_for
        entry = model_by_name(spec[len("garden:"):])
        return onnx.load(model_path(entry)), feed_for(entry), flag or "sr"
    from tensorforge import zoo
    name = spec[len("zoo:"):] if spec.startswith("zoo:") else spec
    feed = zoo.random_inputs(name, batch=batch)
    feed[FLAG] = np.array(True)
    return with_runtime_if(zoo.get_model(name)), feed, flag or FLAG


def build(m, feed, args, drop=()):
    """An engine at the feed's shapes."""
    import tensorforge as tf
    prof = tf.OptimizationProfile()
    for k, v in feed.items():
        if k not in drop and np.ndim(v):
            prof.set_shape(k, v.shape, v.shape, v.shape)
    cfg = tf.BuilderConfig(device=args.device, fp16=args.fp16, tf32=True, opt_level=args.opt_level, profiles=[prof])
    return tf.Builder(cfg).build(m)


def _ins(eng, feed):
    """The feed as tensors where the engine reads them (shape-tensor inputs stay on the host)."""
    import torch
    dev = eng.device
    return {k: torch.as_tensor(v) if eng.is_shape_inference_io(k) or dev.type == "cpu" else torch.as_tensor(v).to(dev)
            for k, v in feed.items()}


def engine_rows(m, feed, flag, args) -> list:
    """The tensorforge rows: run-time If (graph prefix / eager), then the flag folded at build."""
    from tests.garden.check import run_ort
    rows = []
    path = os.path.join(args.work, "model.onnx")
    onnx.save(m, path)
    ref = run_ort(path, feed)
    eng = build(m, feed, args)
    for graph in (True, False):
        row = {"runner": f"tensorforge, run-time If, {'use_cuda_graph' if graph else 'eager'}"}
        try:
            ctx = eng.create_execution_context(use_cuda_graph=graph)
            ins = _ins(eng, feed)
            got = ctx.infer(ins)
            row["cosine"] = min(cosine(got[k].cpu().numpy(), r) for k, r in ref.items())
            row["wall_ms"] = wall_ms(lambda: ctx.infer(ins), iters=args.iters)
            if graph:
                from tensorforge.runtime.dynamic import graph_prefix
                xp = ctx.exec_plan
                n = graph_prefix(ctx.plan, xp)
                row["left_graph"] = [L.name for L in xp.launches[n:]]
                row["graph_launches"] = f"{n}/{len(xp.launches)}"
        except Exception as e:  # noqa: BLE001 - a failure is a row
            row["error"] = first_line(e)
        rows.append(row)
    folded = fold_input(m, flag, feed[flag])
    ffeed = {k: v for k, v in feed.items() if k != flag}
    row = {"runner": f"tensorforge, If folded at build ({flag} = {np.asarray(feed[flag]).tolist()})"}
    try:
        feng = build(folded, ffeed, args)
        row["layers"] = len(feng.plan.layers)
        ctx = feng.create_execution_context(use_cuda_graph=True)
        ins = _ins(feng, ffeed)
        got = ctx.infer(ins)
        row["cosine"] = min(cosine(got[k].cpu().numpy(), r) for k, r in ref.items())
        row["wall_ms"] = wall_ms(lambda: ctx.infer(ins), iters=args.iters)
        row["gpu_ms"], row["timing"] = time_engine(feng, ffeed)
    except Exception as e:  # noqa: BLE001
        row["error"] = first_line(e)
    rows.append(row)
    return rows


def ort_rows(m, feed, args) -> list:
    """ONNX Runtime on each execution provider installed here (CPU always)."""
    import onnxruntime as ort
    rows = []
    path = os.path.join(args.work, "model.onnx")
    for ep in ("CUDAExecutionProvider", "CPUExecutionProvider"):
        if ep not in ort.get_available_providers():
            rows.append({"runner": f"ONNX Runtime {ep}", "error": "not installed on this machine"})
            continue
        so = ort.SessionOptions()
        so.log_severity_level = 3
        sess = ort.InferenceSession(path, so, providers=[ep])
        rows.append({"runner": f"ONNX Runtime {ep}", "wall_ms": wall_ms(lambda: sess.run(None, feed), iters=args.iters)})
    return rows


def table(rows: list, args) -> str:
    """The docs-ready markdown."""
    lines = [f"If decided at run time: {args.model}, {'fp16' if args.fp16 else 'tf32'}, level {args.opt_level}, "
             f"device {args.device}. wall ms: host clock per synchronized inference (median); GPU ms: CUDA-graph "
             "replay (CUDA events).", "",
             "| runner | wall ms | GPU ms | cosine vs ORT CPU | launches in the CUDA graph | left the graph / note |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        wall = f"{r['wall_ms']:.3f}" if "wall_ms" in r else "-"
        gpu = f"{r['gpu_ms']:.3f}" if "gpu_ms" in r else "-"
        cos = f"{r['cosine']:.6f}" if "cosine" in r else "-"
        note = r.get("error") or ", ".join(r.get("left_graph", [])) or r.get("timing", "")
        lines.append(f"| {r['runner']} | {wall} | {gpu} | {cos} | {r.get('graph_launches', '-')} | {note} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", default="zoo:resnet50")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--flag", help="the input the If depends on (zoo: use_softmax; garden: sr)")
    ap.add_argument("--fp16", action="store_true")
    ap.add_argument("--opt-level", type=int, default=3)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--cache", help="garden cache folder (garden: models)")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    if args.cache:
        os.environ["TF_GARDEN_CACHE"] = os.path.abspath(args.cache)
    os.environ.setdefault("TF_GARDEN_OFFLINE", "1")
    import tempfile
    with tempfile.TemporaryDirectory(prefix="if-runtime-") as args.work:
        m, feed, flag = model_and_feed(args.model, args.batch, args.flag)
        rows = engine_rows(m, feed, flag, args) + ort_rows(m, feed, args)
    text = table(rows, args)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "fp16": args.fp16, "rows": rows, "markdown": text}, f, indent=1)
    return 0 if all("error" not in r for r in rows if r["runner"].startswith("tensorforge")) else 1


if __name__ == "__main__":
    sys.exit(main())
