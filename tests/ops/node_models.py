"""One-node ONNX models checked against ONNX Runtime (onnx.reference where ORT lacks an op).

`build` / `check` / `check_batches` / `infer_shapes` take inputs as arrays (graph inputs), C(...)
(initializers) or None (omitted), opset 17 by default. `check_node` takes arrays, const(...) or None,
opset 19 by default, and compares with onnx.reference when oracle="onnx"."""
import numpy as np
from onnx import TensorProto, helper, numpy_helper

from tensorforge.frontend import load
from tensorforge.ir.symbolic import symbol
from tensorforge.testing import check_against_ort, make_model

F, I64 = TensorProto.FLOAT, TensorProto.INT64
_NP2ONNX = {np.float32: F, np.int64: I64, np.int32: TensorProto.INT32, np.bool_: TensorProto.BOOL,
            np.float16: TensorProto.FLOAT16, np.float64: TensorProto.DOUBLE, np.uint8: TensorProto.UINT8}


class C:
    """A constant (initializer) input of the node under test."""

    def __init__(self, data, dtype=np.int64):
        self.data = np.asarray(data, dtype=dtype)


def onnx_type(arr):
    return _NP2ONNX[np.asarray(arr).dtype.type]


def build(op, ins, attrs=None, opset=17, n_out=1, out_types=None, dyn=None):
    """A one-node model; ins: arrays (graph inputs), C(...) (initializers) or None (omitted)."""
    names, graph_in, inits, feed = [], [], [], {}
    for i, x in enumerate(ins):
        if x is None:
            names.append("")
        elif isinstance(x, C):
            names.append(f"c{i}")
            inits.append(numpy_helper.from_array(x.data, f"c{i}"))
        else:
            names.append(f"x{i}")
            shape = list(np.shape(x))
            for d, sym in (dyn or {}).get(i, {}).items():
                shape[d] = sym
            graph_in.append((f"x{i}", onnx_type(x), shape))
            feed[f"x{i}"] = x
    out_types = out_types or [onnx_type(next(x for x in ins if x is not None and not isinstance(x, C)))] * n_out
    outs = [(f"y{j}", t, None) for j, t in enumerate(out_types)]
    node = helper.make_node(op, names, [o[0] for o in outs], name=f"{op.lower()}_node", **(attrs or {}))
    return make_model([node], graph_in, outs, inits, opset=opset), feed


def check(op, ins, attrs=None, opset=17, rtol=1e-5, atol=1e-5, **kw):
    """Build a one-node model and compare tensorforge with ORT on the given inputs."""
    model, feed = build(op, ins, attrs, opset, **kw)
    return check_against_ort(model, feed, rtol=rtol, atol=atol)


def check_batches(op, make_ins, attrs=None, opset=17, batches=(2, 5), dyn_inputs=(0,), rtol=1e-5, atol=1e-5,
                  **kw):
    """One model with a symbolic batch dim 'N' on the given inputs, run at two batch sizes."""
    dyn = {i: {0: "N"} for i in dyn_inputs}
    model, _ = build(op, make_ins(batches[0]), attrs, opset, dyn=dyn, **kw)
    for b in batches:
        _, feed = build(op, make_ins(b), attrs, opset, dyn=dyn, **kw)
        check_against_ort(model, feed, rtol=rtol, atol=atol)


def infer_shapes(op, ins, attrs=None, opset=17, dyn=None, **kw):
    """Output shapes as tensorforge infers them (symbolic dims stay sympy expressions)."""
    model, _ = build(op, ins, attrs, opset, dyn=dyn, **kw)
    g = load(model)
    return [v.shape for v in g.outputs]


N = symbol("N")


TYPES = {np.float32: TensorProto.FLOAT, np.float16: TensorProto.FLOAT16, np.float64: TensorProto.DOUBLE,
         np.int64: TensorProto.INT64, np.int32: TensorProto.INT32, np.int8: TensorProto.INT8,
         np.uint8: TensorProto.UINT8, np.int16: TensorProto.INT16, np.uint16: TensorProto.UINT16,
         np.uint32: TensorProto.UINT32, np.uint64: TensorProto.UINT64, np.bool_: TensorProto.BOOL}


def const(x, dtype=None):
    """Marks a node input as an initializer."""
    return ("const", np.asarray(x, dtype=dtype))


def check_node(op, ins, attrs=None, opset=19, outs=1, out_types=None, rtol=1e-5, atol=1e-5, oracle="ort"):
    """One-node model: arrays become graph inputs, const(...) initializers, None omitted inputs.

    oracle="onnx" compares with onnx.reference (for ops ONNX Runtime does not implement)."""
    names, graph_in, inits, feed = [], [], [], {}
    for i, x in enumerate(ins):
        if x is None:
            names.append("")
        elif isinstance(x, tuple) and x[0] == "const":
            names.append(f"c{i}")
            inits.append(numpy_helper.from_array(x[1], f"c{i}"))
        else:
            names.append(f"x{i}")
            graph_in.append((f"x{i}", TYPES[x.dtype.type], list(x.shape)))
            feed[f"x{i}"] = x
    out_types = out_types or [graph_in[0][1]] * outs
    node = helper.make_node(op, names, [f"y{j}" for j in range(len(out_types))], **(attrs or {}))
    model = make_model([node], graph_in, [(f"y{j}", t, None) for j, t in enumerate(out_types)], inits,
                       opset=opset)
    if oracle == "onnx":
        from onnx.reference import ReferenceEvaluator
        from tensorforge.testing import assert_close, run_tf
        ref = dict(zip([o.name for o in model.graph.output], ReferenceEvaluator(model).run(None, feed)))
        got = run_tf(model, feed)
        assert_close(got, ref, rtol, atol)
        return got
    return check_against_ort(model, feed, rtol=rtol, atol=atol)


def domain_model(op, domain, ins, outs, attrs, opset):
    from onnx import helper
    node = helper.make_node(op, [n for n, _ in ins], [n for n, _ in outs], domain=domain, **attrs)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT if a.dtype == np.float32
                                                                      else TensorProto.INT64, a.shape) for n, a in ins],
                          [helper.make_tensor_value_info(n, t, None) for n, t in outs])
    return helper.make_model(g, opset_imports=[helper.make_opsetid(domain, opset)], ir_version=8)
