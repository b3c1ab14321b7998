"""Quantization rules: the reference before == the reference after, and each rule fires."""
import collections

import numpy as np
import pytest

from tensorforge import frontend

from .qdq_models import F8, I8, U8, conv_block, qdq
from .util import init, model, optimize, randn, run_graph

X = {"x": randn((2, 8, 6, 6), 11, -2, 2)}


def _same(m, feed, lsb=None, exact_frac=0.99):
    """Outputs after == before: float outputs to ~1e-5; quantized ones within one step (`lsb`) with
    nearly all elements identical (a different summation order may flip a rounding tie)."""
    before = run_graph(frontend.load(m), feed)
    g = optimize(m)
    after = run_graph(g, feed)
    for k, r in before.items():
        a, r = after[k].astype(np.float64), r.astype(np.float64)
        if lsb is None:
            np.testing.assert_allclose(a, r, rtol=1e-5, atol=1e-5, err_msg=k)
        else:
            assert np.abs(a - r).max() <= lsb * 1.0001, k
            assert (a == r).mean() >= exact_frac, k
    return g


def hist(g):
    """Op histogram without the layers that quantize graph inputs (one pointwise Q each)."""
    ins = {id(v) for v in g.inputs}
    return collections.Counter(n.op for n in g.nodes if not (n.op == "fused.Pointwise" and
                                                             any(id(v) in ins for v in n.inputs)
                                                             and n.outputs[0].dtype in ("int8", "uint8", "float8e4m3fn")))


@pytest.mark.parametrize("dt", [I8, F8])
def test_conv_bn_relu_fuses_into_one_quantized_conv(dt):
    g = _same(conv_block(dt), X)
    assert hist(g) == {"fused.QConv": 1}, hist(g)
    qc = next(n for n in g.nodes if n.op.startswith("fused.Q"))
    assert qc.inputs[1].dtype == ("int8" if dt == I8 else "float8e4m3fn") and qc.inputs[1].const is not None


@pytest.mark.parametrize("dt", [I8, F8])
def test_output_q_and_residual_fuse(dt):
    g = _same(conv_block(dt, residual=True, out_q=True), X, lsb=0.05)
    assert hist(g) == {"fused.QConv": 1}, hist(g)
    qc = next(n for n in g.nodes if n.op.startswith("fused.Q"))
    assert qc.attrs["extra_q"] == [[float(np.float32(0.02)), 0]]
    casts = [n["attrs"]["to"] for n in qc.attrs["epilogue"]["nodes"] if n["op"] == "Cast"]
    assert dt in casts  # the output Q -> DQ runs inside the epilogue
    assert qc.inputs[4].producer is not None  # the skip input is the quantized x (its Q)


def test_uint8_zero_points_and_pre_quantized_weights():
    inits = [init("wq", np.random.RandomState(0).randint(-127, 128, (16, 8)).astype(np.int8)),
             init("ws", np.full((16,), 0.01, np.float32)), init("bias", randn((16,), 2))]
    nodes, xd = qdq("x", "xq", 0.03, zp=np.uint8(128), dt=U8, inits=inits)
    nodes += [("DequantizeLinear", ["wq", "ws"], ["w"], {"axis": 0}, "wdq"),
              ("Gemm", [xd, "w", "bias"], ["g"], {"transB": 1}, "fc"), ("Relu", ["g"], ["y"], {}, "r")]
    m = model(nodes, [("x", [4, 8])], ["y"], inits)
    g = _same(m, {"x": randn((4, 8), 1, -3, 3)})
    assert hist(g) == {"fused.QGemm": 1}, hist(g)
    assert next(n for n in g.nodes if n.op == "fused.QGemm").attrs["x_zp"] == 128


def test_matmul_per_column_weight():
    inits = [init("w", randn((8, 12), 3))]
    nodes, xd = qdq("x", "xq", 0.02, inits=inits)
    wn, wd = qdq("w", "wq", np.full((12,), 0.01, np.float32), axis=1, inits=inits)
    m = model(nodes + wn + [("MatMul", [xd, wd], ["y"], {}, "mm")], [("x", [2, 5, 8])], ["y"], inits)
    g = _same(m, {"x": randn((2, 5, 8), 1)})
    assert hist(g) == {"fused.QMatMul": 1}, hist(g)


@pytest.mark.parametrize("op,attrs,extra", [
    ("Reshape", {}, [("shape", np.array([2, -1], np.int64))]),
    ("Transpose", {"perm": [0, 2, 3, 1]}, []),
    ("Flatten", {"axis": 1}, []),
    ("Slice", {}, [("st", np.array([1], np.int64)), ("en", np.array([5], np.int64)), ("ax", np.array([2], np.int64))]),
    ("MaxPool", {"kernel_shape": [2, 2], "strides": [2, 2]}, []),
    ("Pad", {}, [("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))]),
])
def test_dq_moves_forward_through_commuting_ops(op, attrs, extra):
    inits = [init(n, v) for n, v in extra]
    nodes, xd = qdq("x", "xq", 0.05, zp=np.uint8(100), dt=U8, inits=inits)
    nodes.append((op, [xd] + [n for n, _ in extra], ["y"], attrs, "op"))
    m = model(nodes, [("x", [2, 8, 6, 6])], ["y"], inits)
    g = _same(m, X)
    ops = [n.op for n in g.nodes]
    assert ops.index(op) < max(i for i, o in enumerate(ops) if o != op), ops  # op reads quantized data
    assert next(n for n in g.nodes if n.op == op).inputs[0].dtype == "uint8"


def test_concat_with_equal_scales_runs_quantized():
    inits = []
    a, ad = qdq("x", "aq", 0.05, inits=inits)
    b, bd = qdq("x2", "bq", 0.05, inits=inits)
    m = model(a + b + [("Concat", [ad, bd], ["y"], {"axis": 1}, "cat")], [("x", [2, 8, 6, 6]), ("x2", [2, 8, 6, 6])],
              ["y"], inits)
    g = _same(m, {**X, "x2": randn((2, 8, 6, 6), 5)})
    assert next(n for n in g.nodes if n.op == "Concat").inputs[0].dtype == "int8"


def test_q_moves_backward_and_relu_before_uint8_q_drops():
    inits = []
    qn, yd = qdq("t", "tq", 0.05, zp=np.uint8(0), dt=U8, inits=inits)
    nodes = [("Relu", ["x"], ["r"], {}, "relu"), ("Reshape", ["r", "shape"], ["t"], {}, "rs")] + qn
    inits.append(init("shape", np.array([2, -1], np.int64)))
    m = model(nodes + [("Identity", [yd], ["y"], {}, "o")], [("x", [2, 8, 6, 6])], ["y"], inits)
    g = _same(m, X)
    assert "Relu" not in hist(g) and not any("Relu" in str(n.attrs) for n in g.nodes), [n.op for n in g.nodes]


def test_average_pool_between_dq_and_q_is_one_quantized_layer():
    inits = []
    nodes, xd = qdq("x", "xq", 0.05, inits=inits)
    nodes.append(("GlobalAveragePool", [xd], ["p"], {}, "gap"))
    qn, yd = qdq("p", "pq", 0.01, inits=inits)
    m = model(nodes + qn + [("Identity", [yd], ["y"], {}, "o")], [("x", [2, 8, 6, 6])], ["y"], inits)
    g = _same(m, X, lsb=0.01)
    assert "fused.QOp" in hist(g)
    qop = next(n for n in g.nodes if n.op == "fused.QOp")
    assert qop.attrs["op"] == "GlobalAveragePool" and qop.outputs[0].dtype == "int8"


def test_quantized_add_of_two_dq_inputs_is_one_layer():
    inits = []
    a, ad = qdq("x", "aq", 0.05, inits=inits)
    b, bd = qdq("x2", "bq", 0.04, inits=inits)
    qn, yd = qdq("s", "sq", 0.08, inits=inits)
    m = model(a + b + [("Add", [ad, bd], ["s"], {}, "add")] + qn + [("Identity", [yd], ["y"], {}, "o")],
              [("x", [2, 8, 6, 6]), ("x2", [2, 8, 6, 6])], ["y"], inits)
    g = _same(m, {**X, "x2": randn((2, 8, 6, 6), 5)})  # exact: the same float32 ops as the Q/DQ graph
    assert len(g.nodes) <= 3, [n.op for n in g.nodes]  # Q(a), Q(b), one pointwise add with int8 I/O


def test_block_quantized_weight_runs_unfused():
    inits = [init("w", randn((8, 16), 3))]
    nodes, xd = qdq("x", "xq", 0.02, inits=inits)
    wn, wd = qdq("w", "wq", np.full((8, 4), 0.01, np.float32), axis=1, block=4, inits=inits)
    m = model(nodes + wn + [("MatMul", [xd, wd], ["y"], {}, "mm")], [("x", [2, 8])], ["y"], inits, opset=21)
    _same(m, {"x": randn((2, 8), 1)})


@pytest.mark.parametrize("dt,zp", [(F8, None), (I8, None), (U8, 128)])
def test_lowered_q_is_recognized(dt, zp):
    """lower.lowered_q reads back the chain a per-tensor Q is lowered to (the attention's output-Q rule
    takes it); a chain whose inner value has another user is not one."""
    from tensorforge.passes.quant.lower import lower, lowered_q
    inits = [init("s", np.asarray(0.05, np.float32))]
    ins = ["x", "s"]
    if zp is not None:
        inits.append(init("z", np.asarray(zp, np.uint8)))
        ins.append("z")
    attrs = {"output_dtype": dt} if zp is None else {}
    m = model([("QuantizeLinear", ins, ["y"], attrs, "Q")], [("x", [2, 3])], [("y", dt, None)], inits, opset=21)
    g = frontend.load(m)
    q = [n for n in g.nodes if n.op == "QuantizeLinear"][0]
    x = q.inputs[0]
    lower(g, q)
    got = lowered_q(g, x)
    assert got is not None
    (s, z, name), chain, out = got
    assert abs(s - 0.05) < 1e-9 and z == (zp or 0) and name == {F8: "float8e4m3fn", I8: "int8", U8: "uint8"}[dt]
    assert out.name == "y" and chain[-1].op == "Cast"
    g.add_node("Neg", [chain[0].outputs[0]], [g.new_value("tap", "float32", [2, 3])], {}, name="tap")
    assert lowered_q(g, x) is None


def test_split_last_add():
    """passes.quant.skip_norm.split_last_add: the epilogue without its final `+ input j`, inputs renumbered."""
    import torch

    from tensorforge.ops.fused.expr import ExprBuilder, eval_expr
    from tensorforge.passes.quant.skip_norm import split_last_add

    def build(f):
        b = ExprBuilder()
        return b.build(f(b))
    y, s, c = torch.randn(3, 4), torch.randn(3, 4), torch.randn(4)
    # (y + c) + s with s = input 1 and c = input 2: y + c, c renumbered to input 1
    e = build(lambda b: b.op("Add", [b.op("Add", [b.input(0), b.input(2)]), b.input(1)]))
    rest = split_last_add(e, 1)
    assert torch.equal(eval_expr(rest, [y, c]), y + c)
    assert split_last_add(build(lambda b: b.op("Add", [b.input(1), b.input(0)])), 1) == \
        {"nodes": [{"op": "input", "i": 0}], "out": 0}
    assert split_last_add(build(lambda b: b.op("Relu", [b.op("Add", [b.input(0), b.input(1)])])), 1) is None
    assert split_last_add(build(lambda b: b.op("Add", [b.op("Mul", [b.input(0), b.input(1)]), b.input(1)])), 1) is None
    assert split_last_add(build(lambda b: b.op("Add", [b.input(0), b.input(2)])), 1) is None
