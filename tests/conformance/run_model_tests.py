"""Run ONNX's backend model suites (`simple`, `pytorch-converted`, `pytorch-operator`) through tensorforge.

    python tests/conformance/run_model_tests.py [--kinds simple,pytorch-converted,pytorch-operator]
        [--target-opset 13] [--out FILE] [-k REGEX] [-j JOBS]

These models are stored with their test data (test_data_set_*/input_*.pb, output_*.pb) and mostly
old opsets (6-9): a model whose default-domain opset is below --min-opset is first upgraded to
--target-opset with onnx.version_converter (a model it cannot convert counts as failed, kind
'convert'). Cases run in the same forked workers and are compared as run_node_tests does."""
from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import re
import sys
import time
import warnings
from types import SimpleNamespace

try:
    from . import run_node_tests as conf
except ImportError:  # run as a script
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import run_node_tests as conf

KINDS = ("simple", "pytorch-converted", "pytorch-operator")


def _read(path):
    """A tensor (or sequence) .pb file as the case data run_case expects."""
    import onnx
    from onnx import numpy_helper
    data = open(path, "rb").read()
    t = onnx.TensorProto()
    t.ParseFromString(data)
    if t.data_type or t.dims or t.raw_data:
        return t
    s = onnx.SequenceProto()
    s.ParseFromString(data)
    return [numpy_helper.to_array(x) for x in s.tensor_values]


def upgrade(model, min_opset: int, target: int):
    """The model at `target` opset when its default-domain opset is below min_opset (else as is)."""
    from onnx import version_converter
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or opset >= min_opset:
        return model
    out = version_converter.convert_version(model, target)
    return _prelu_channels(model, out) if opset < 7 else out


def _prelu_channels(old, new):
    """The converter keeps an opset-6 PRelu's per-channel slope (C,) as it is, which opset 7's
    broadcasting reads as the last axis: reshape it to (C, 1, ..., 1) as opset 6 meant."""
    import onnx
    from onnx import helper
    ranks = {v.name: len(v.type.tensor_type.shape.dim) for v in list(old.graph.input) + list(old.graph.value_info)}
    ranks.update({t.name: len(t.dims) for t in old.graph.initializer})
    nodes = []
    for n in new.graph.node:
        if n.op_type == "PRelu" and ranks.get(n.input[1]) == 1 and ranks.get(n.input[0], 0) > 2:
            shape = f"{n.input[1]}_chw_shape"
            new.graph.initializer.append(helper.make_tensor(shape, onnx.TensorProto.INT64, [ranks[n.input[0]] - 1],
                                                            [-1] + [1] * (ranks[n.input[0]] - 2)))
            nodes.append(helper.make_node("Reshape", [n.input[1], shape], [f"{n.input[1]}_chw"]))
            n.input[1] = f"{n.input[1]}_chw"
        nodes.append(n)
    del new.graph.node[:]
    new.graph.node.extend(nodes)
    return new


def load_cases(kinds=KINDS, pattern=None, min_opset=11, target=13):
    """(cases ready for run_node_tests.run_all, {name: (suite, conversion error)}) for the model suites."""
    import onnx
    from onnx.backend.test.loader import load_model_tests
    warnings.filterwarnings("ignore")
    rx = re.compile(pattern) if pattern else None
    cases, bad = [], {}
    for kind in kinds:
        for t in load_model_tests(kind=kind):
            if (rx is not None and not rx.search(t.name)) or t.model_dir is None:
                continue
            model = onnx.load(os.path.join(t.model_dir, "model.onnx"))
            try:
                model = upgrade(model, min_opset, target)
            except Exception as e:  # noqa: BLE001 - the converter's failure is the case's result
                bad[t.name] = (kind, f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}")
                continue
            sets = []
            for d in sorted(glob.glob(os.path.join(t.model_dir, "test_data_set*"))):
                n_in = len(glob.glob(os.path.join(d, "input_*.pb")))
                n_out = len(glob.glob(os.path.join(d, "output_*.pb")))
                sets.append(([_read(os.path.join(d, f"input_{i}.pb")) for i in range(n_in)],
                             [_read(os.path.join(d, f"output_{i}.pb")) for i in range(n_out)]))
            cases.append(SimpleNamespace(name=t.name, kind=kind, model=model, data_sets=sets, rtol=t.rtol,
                                         atol=t.atol))
    return cases, bad


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--min-opset", type=int, default=11, help="upgrade models below this opset")
    ap.add_argument("--target-opset", type=int, default=13)
    ap.add_argument("--out", help="write the JSON list of failures here")
    ap.add_argument("-k", "--filter", help="regex on case names")
    ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args(argv)
    t0 = time.time()
    kinds = args.kinds.split(",")
    cases, bad = load_cases(kinds, args.filter, args.min_opset, args.target_opset)
    failures = conf.run_all(cases, args.jobs, args.timeout)
    suite = {c.name: c.kind for c in cases} | {n: k for n, (k, _) in bad.items()}
    failures += [{"name": n, "op": "?", "ops": [], "kind": "convert", "error": e} for n, (_, e) in bad.items()]
    total, failed = collections.Counter(suite.values()), collections.Counter(suite[f["name"]] for f in failures)
    for k in kinds:
        print(f"{k}: {total[k] - failed[k]} passed of {total[k]}")
    print(conf.summarize(len(suite), failures))
    for f in failures:
        print(f"  {f['name']}: {f['kind']}: {f['error'][:160]}")
    print(f"({len(suite)} cases in {time.time() - t0:.0f} s)")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(failures, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
