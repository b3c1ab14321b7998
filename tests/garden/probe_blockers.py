"""Check that an xfail model's recorded blocker is its only one: work around it by hand, then build and compare.

`python3 -m tests.garden.probe_blockers [NAME ...]` rewrites each xfail model with the workaround for its
feature (the manifest's `feature`) and runs the usual CPU-vs-ORT check on the rewritten file. The workarounds
use ONNX Runtime to evaluate values (shape arithmetic, If conditions): they are probes for issue 13, not fixes.
"""
from __future__ import annotations

import os
import sys
import tempfile

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .check import check_model, run_ort
from .fetch import load_manifest, model_path
from .inputs import feed_for


def _eval(model: onnx.ModelProto, names: list[str], feed: dict) -> dict:
    """Values of intermediate tensors, computed by ONNX Runtime."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    m.graph.output.extend(helper.make_empty_tensor_value_info(n) for n in names)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.onnx")
        onnx.save(m, path)
        out = run_ort(path, feed)
    return {n: out[n] for n in names}


def _data_dependent(g: onnx.GraphProto, data: set) -> set:
    """Names whose value depends on the data of `data` inputs (Shape/Size read only shapes)."""
    data = set(data)
    for n in g.node:
        if n.op_type in ("Shape", "Size"):
            continue
        refs = set(n.input)
        for a in n.attribute:
            for sg in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                refs.update(i for sn in sg.node for i in sn.input)
        if refs & data:
            data.update(n.output)
    return data


def rename_anonymous_dims(m: onnx.ModelProto, entry, feed) -> onnx.ModelProto:
    """Give every '?' / unnamed / negative input dim its own name."""
    for vi in m.graph.input:
        for i, d in enumerate(vi.type.tensor_type.shape.dim):
            if d.dim_param in ("?", "") and d.dim_value <= 0:
                d.Clear()
                d.dim_param = f"{vi.name}_dim{i}"
    return m


def fold_shape_values(m: onnx.ModelProto, entry, feed) -> onnx.ModelProto:
    """Replace every node computed from input shapes only by constants (evaluated by ORT)."""
    g = m.graph
    data = _data_dependent(g, feed)
    outs = {n.output[0] for n in g.node} - {o.name for o in g.output}
    names = [n.output[0] for n in g.node if n.op_type != "Constant" and not set(n.output) & data
             and len(n.output) == 1 and n.output[0] in outs]
    vals = _eval(m, names, feed)
    keep = [n for n in g.node if not (len(n.output) == 1 and n.output[0] in vals)]
    g.initializer.extend(numpy_helper.from_array(v, k) for k, v in vals.items())
    del g.node[:]
    g.node.extend(keep)
    return m


def inline_known_ifs(m: onnx.ModelProto, entry, feed) -> onnx.ModelProto:
    """Inline every If whose condition comes from shapes and fixed-value inputs, until none is left."""
    fixed = {k for k, s in entry["inputs"].items() if "value" in s}
    for _ in range(50):
        g = m.graph
        data = _data_dependent(g, set(feed) - fixed)
        conds = [n.input[0] for n in g.node if n.op_type == "If" and n.input[0] not in data]
        if not conds:
            return m
        vals = _eval(m, conds, feed)
        new = []
        for n in g.node:
            if n.op_type != "If" or n.input[0] not in vals:
                new.append(n)
                continue
            branch = "then_branch" if bool(vals[n.input[0]]) else "else_branch"
            br = next(a.g for a in n.attribute if a.name == branch)
            new += list(br.node)
            g.initializer.extend(br.initializer)
            new += [helper.make_node("Identity", [bo.name], [o]) for bo, o in zip(br.output, n.output)]
        del g.node[:]
        g.node.extend(new)
    return m


def float_dq_lstm(m: onnx.ModelProto, entry, feed) -> onnx.ModelProto:
    """Replace com.microsoft::DynamicQuantizeLSTM by an LSTM on its dequantized weights."""
    g = m.graph
    init = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    for k, n in enumerate(list(g.node)):
        if n.op_type != "DynamicQuantizeLSTM":
            continue
        ins = list(n.input) + [""] * (12 - len(n.input))

        def deq(w, s, z):
            # weights are [dirs, in, 4*hidden]; scales per direction ([dirs]) or per column ([dirs, 4*hidden])
            s, z = init[s].astype(np.float32), init[z].astype(np.float32)
            s, z = (s[:, None, None], z[:, None, None]) if s.ndim == 1 else (s[:, None, :], z[:, None, :])
            return np.ascontiguousarray(np.transpose((init[w].astype(np.float32) - z) * s, (0, 2, 1)))
        wn, rn = n.name + "_W_float", n.name + "_R_float"
        g.initializer.extend([numpy_helper.from_array(deq(ins[1], ins[8], ins[9]), wn),
                              numpy_helper.from_array(deq(ins[2], ins[10], ins[11]), rn)])
        lstm = helper.make_node("LSTM", [ins[0], wn, rn] + ins[3:8], list(n.output), name=n.name + "_float")
        lstm.attribute.extend(n.attribute)
        g.node.remove(n)
        g.node.insert(k, lstm)
    return m


WORKAROUNDS = {
    "symbolic dims named '?' tied together": rename_anonymous_dims,
    "shape values lost through Cast (Range bounds)": fold_shape_values,
    "control flow: If": inline_known_ifs,
    "contrib op com.microsoft::DynamicQuantizeLSTM": float_dq_lstm,
}


def main(argv=None) -> int:
    """Probe each (or each named) xfail model; print what the check says after the workaround."""
    names = argv if argv is not None else sys.argv[1:]
    for e in load_manifest():
        if e["status"] != "xfail" or (names and e["name"] not in names):
            continue
        fix = WORKAROUNDS.get(e.get("feature", ""))
        if fix is None:
            print(f"{e['name']}: no workaround for {e.get('feature')!r}")
            continue
        feed = feed_for(e)
        m = fix(onnx.load(model_path(e)), e, feed)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "probe.onnx")
            onnx.save(m, path)
            r = check_model(e, path)
        verdict = f"agrees (rel {r.max_rel:.1e}, cos {r.min_cosine:.6f})" if r.agrees else (r.error or "disagrees")
        print(f"{e['name']}: after {fix.__name__}: {verdict}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
