"""Helpers for pass tests: build tiny graphs, run them through the op references, compare."""
from __future__ import annotations

import numpy as np
import sympy
import torch
from onnx import helper, numpy_helper

from tensorforge import frontend, passes
from tensorforge.ops import registry
from tensorforge.testing import make_model, rand

F = 1  # TensorProto.FLOAT


def init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def randn(shape, seed=0, lo=-1.0, hi=1.0):
    return rand(shape, np.float32, seed, lo, hi)


def model(nodes, inputs, outputs, inits=(), opset=17):
    """A ModelProto from (op, ins, outs, attrs[, name]) tuples or NodeProtos."""
    protos = []
    for i, n in enumerate(nodes):
        if isinstance(n, tuple):
            op, ins, outs, attrs = (n + ({},))[:4] if len(n) == 3 else n[:4]
            name = n[4] if len(n) > 4 else f"{op.lower()}{i}"
            n = helper.make_node(op, ins, outs, name=name, **attrs)
        protos.append(n)
    ins = [x if len(x) == 3 else (x[0], F, x[1]) for x in inputs]
    outs = [(o, F, None) if isinstance(o, str) else o for o in outputs]
    return make_model(protos, ins, outs, inits, opset=opset)


def _sym_env(g, feed):
    env = {}
    for v in g.inputs:
        for d, n in zip(v.shape, np.shape(feed[v.name])):
            if isinstance(d, sympy.Symbol):
                env[d] = int(n)
    return env


def run_graph(g, feed):
    """Evaluate an IR graph node by node with the references; returns numpy outputs."""
    env = {id(v): torch.as_tensor(np.asarray(feed[v.name])) for v in g.inputs}
    sym = _sym_env(g, feed)

    def get(v):
        if v is None:
            return None
        if id(v) in env:
            return env[id(v)]
        if v.const is not None:
            return v.const
        if v.sym is not None:
            vals = [int(sympy.sympify(x).subs(sym)) for x in v.sym.reshape(-1)]
            return torch.tensor(vals, dtype=torch.int64).reshape(v.sym.shape)
        raise KeyError(v.name)
    for n in g.nodes:
        outs = registry.get(n.op, n.domain).run([get(v) for v in n.inputs], n.attrs, g.opset)
        for v, t in zip(n.outputs, outs):
            env[id(v)] = t
    return {v.name: get(v).numpy() for v in g.outputs}


def check_infer(g):
    """Every node's inference rule agrees with the dtype/shape recorded on its outputs."""
    for n in g.nodes:
        infos = registry.get(n.op, n.domain).infer(n)
        for v, (dt, shp) in zip(n.outputs, infos):
            assert dt == v.dtype, f"{n.name}: infer dtype {dt} != {v.dtype}"
            assert len(shp) == len(v.shape) and all(sympy.simplify(a - b) == 0 for a, b in zip(shp, v.shape)), \
                f"{n.name}: infer shape {shp} != {v.shape}"


def optimize(m, pipeline=None):
    """Load a model and run passes (all of PIPELINE by default) with verification."""
    g = frontend.load(m)
    g = passes.run_pipeline(g, pipeline=pipeline, check=True)
    check_infer(g)
    return g


def ops(g):
    return [n.op for n in g.nodes]


def check(m, feed, pipeline=None, rtol=1e-5, atol=1e-5):
    """Optimize m and assert the references before and after agree; returns the optimized graph."""
    before = run_graph(frontend.load(m), feed)
    g = optimize(m, pipeline)
    after = run_graph(g, feed)
    for k, r in before.items():
        assert after[k].shape == r.shape and after[k].dtype == r.dtype, k
        np.testing.assert_allclose(after[k].astype(np.float64), r.astype(np.float64), rtol=rtol, atol=atol,
                                   err_msg=k)
    return g


def node(g, op):
    """The only node of type op."""
    found = [n for n in g.nodes if n.op == op]
    assert len(found) == 1, f"expected one {op}, found {ops(g)}"
    return found[0]
