"""Shape values flow through casts and float arithmetic (YOLO anchor grids, Resize sizes), checked
symbolically on the graph and numerically against ONNX Runtime at several input shapes."""
import numpy as np
import pytest
import sympy
from onnx import TensorProto as T
from onnx import helper as h

import tensorforge as tf
from tensorforge import frontend
from tensorforge.ir.symbolic import symbol
from tensorforge.testing import run_ort

H, W = symbol("H"), symbol("W")


def _c(name, dt, v):
    v = np.asarray(v)
    return h.make_tensor(name, dt, list(v.shape), v.reshape(-1).tolist())


def _model(nodes, outs, inits, x_shape=("N", 3, "H", "W")):
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, list(x_shape))],
                     [h.make_tensor_value_info(o, T.FLOAT if o.startswith("f") else T.INT64, None) for o in outs],
                     inits)
    return h.make_model(g, opset_imports=[h.make_opsetid("", 17)])


def _dims(idx=(2, 3)):
    """Shape(x) -> Gather each of idx (int64 scalars 'd2', 'd3')."""
    nodes = [h.make_node("Shape", ["x"], ["s"])]
    nodes += [h.make_node("Gather", ["s", f"i{i}"], [f"d{i}"], axis=0) for i in idx]
    return nodes, [_c(f"i{i}", T.INT64, i) for i in idx]


def _check(m, shapes, seed=0):
    eng = tf.Builder(tf.BuilderConfig(device="cpu")).build(m)
    ctx = eng.create_execution_context()
    for k, shp in enumerate(shapes):
        feed = {"x": np.random.default_rng(seed + k).standard_normal(shp).astype(np.float32)}
        got, ref = ctx.infer(feed), run_ort(m, feed)
        for name, r in ref.items():
            assert tuple(got[name].shape) == r.shape, (name, shp)
            np.testing.assert_allclose(got[name].numpy(), r, rtol=1e-6, atol=1e-6, err_msg=f"{name} at {shp}")
    return eng


def _anchor_grid():
    """YOLOv8's head: Range(0, Cast(Gather(Shape(x)), FLOAT), 1) + 0.5 per axis, expanded to a grid."""
    nodes, inits = _dims()
    nodes += [h.make_node("Cast", ["d2"], ["hf"], to=T.FLOAT), h.make_node("Cast", ["d3"], ["wf"], to=T.FLOAT),
              h.make_node("Range", ["zero", "hf", "one"], ["ry"]), h.make_node("Range", ["zero", "wf", "one"], ["rx"]),
              h.make_node("Add", ["ry", "half"], ["ry2"]), h.make_node("Add", ["rx", "half"], ["rx2"]),
              h.make_node("Unsqueeze", ["ry2", "ax1"], ["ry3"]), h.make_node("Shape", ["ry2"], ["sh"]),
              h.make_node("Shape", ["rx2"], ["sw"]), h.make_node("Concat", ["sh", "sw"], ["hw"], axis=0),
              h.make_node("Expand", ["ry3", "hw"], ["gy"]), h.make_node("Expand", ["rx2", "hw"], ["gx"]),
              h.make_node("Unsqueeze", ["gy", "axm"], ["gy1"]), h.make_node("Unsqueeze", ["gx", "axm"], ["gx1"]),
              h.make_node("Concat", ["gx1", "gy1"], ["grid"], axis=-1),
              h.make_node("Reshape", ["grid", "m12"], ["f_grid"])]
    inits += [_c("zero", T.FLOAT, 0.0), _c("one", T.FLOAT, 1.0), _c("half", T.FLOAT, 0.5),
              _c("ax1", T.INT64, [1]), _c("axm", T.INT64, [-1]), _c("m12", T.INT64, [-1, 2])]
    return _model(nodes, ["f_grid"], inits)


def test_anchor_grid_is_symbolic_and_matches_ort():
    m = _anchor_grid()
    g = frontend.load(m)
    v = g.values
    assert v["hf"].dtype == "float32" and v["hf"].sym.item() == H  # the dim survives the float cast
    assert v["ry"].shape == (H,) and v["rx2"].shape == (W,)
    assert v["f_grid"].shape == (H * W, 2)
    eng = _check(m, [(1, 3, 5, 7), (2, 3, 8, 3), (1, 3, 1, 1)])
    assert "Range" in {lay.type for lay in eng.plan.layers}


def test_float_arithmetic_floor_ceil_back_to_int():
    """Resize-style size math: floor(H * 0.5), ceil(W / 3) -> int64 -> a Slice end and a Reshape."""
    nodes, inits = _dims()
    nodes += [h.make_node("Cast", ["d2"], ["hf"], to=T.FLOAT), h.make_node("Cast", ["d3"], ["wf"], to=T.DOUBLE),
              h.make_node("Mul", ["hf", "half"], ["hh"]), h.make_node("Floor", ["hh"], ["hfl"]),
              h.make_node("Identity", ["hh"], ["f_hh"]),  # H / 2 with its fraction, a graph output
              h.make_node("Div", ["wf", "three"], ["w3"]), h.make_node("Ceil", ["w3"], ["wc"]),
              h.make_node("Cast", ["hfl"], ["hi"], to=T.INT64), h.make_node("Cast", ["wc"], ["wi"], to=T.INT64),
              h.make_node("Max", ["wi", "one_i"], ["wm"]),
              h.make_node("Unsqueeze", ["hi", "ax0"], ["hi1"]), h.make_node("Unsqueeze", ["wm", "ax0"], ["wi1"]),
              h.make_node("Concat", ["hi1", "wi1"], ["ends"], axis=0),
              h.make_node("Slice", ["x", "z2", "ends", "ax23"], ["f_xs"]),
              h.make_node("Round", ["wf"], ["wr"]), h.make_node("Cast", ["wr"], ["wri"], to=T.INT32),
              h.make_node("Cast", ["wri"], ["wrl"], to=T.INT64),
              h.make_node("Unsqueeze", ["wrl", "ax0"], ["wr1"]),
              h.make_node("Concat", ["one_1", "wr1"], ["tgt2"], axis=0),
              h.make_node("ConstantOfShape", ["tgt2"], ["f_ones"], value=h.make_tensor("v", T.FLOAT, [1], [1.5]))]
    inits += [_c("half", T.FLOAT, 0.5), _c("three", T.DOUBLE, 3.0), _c("one_i", T.INT64, 1),
              _c("ax0", T.INT64, [0]), _c("z2", T.INT64, [0, 0]), _c("ax23", T.INT64, [2, 3]),
              _c("one_1", T.INT64, [2])]
    m = _model(nodes, ["f_xs", "f_ones", "f_hh"], inits)
    g = frontend.load(m)
    assert g.values["hi"].sym.item() == sympy.floor(H / 2)
    assert g.values["wi"].sym.item() == sympy.ceiling(W / 3)
    assert g.values["f_xs"].shape[2:] == (sympy.floor(H / 2), sympy.Max(1, sympy.ceiling(W / 3)))
    assert g.values["wri"].sym.item() == W and g.values["f_ones"].shape == (2, W)
    eng = _check(m, [(1, 3, 6, 7), (2, 3, 9, 2), (1, 3, 5, 12)])
    assert eng.plan.tensors["f_hh__src"].sym == ["H/2"]  # computed from the bound dims, not by a layer


def test_equal_where_on_cast_dims():
    """Equal/Where on float shape values pick a size at build time (exporters' 'if dim == 1' guards)."""
    nodes, inits = _dims((2,))
    nodes += [h.make_node("Cast", ["d2"], ["hf"], to=T.FLOAT), h.make_node("Equal", ["hf", "hf"], ["eq"]),
              h.make_node("Where", ["eq", "d2", "two"], ["n"]), h.make_node("Unsqueeze", ["n", "ax0"], ["n1"]),
              h.make_node("Concat", ["n1", "m1"], ["tgt"], axis=0),
              h.make_node("Transpose", ["x"], ["xt"], perm=[2, 0, 1, 3]),
              h.make_node("Reshape", ["xt", "tgt"], ["f_y"])]
    inits += [_c("two", T.INT64, 2), _c("ax0", T.INT64, [0]), _c("m1", T.INT64, [-1])]
    m = _model(nodes, ["f_y"], inits)
    g = frontend.load(m)
    assert g.values["n"].sym.item() == H and g.values["f_y"].shape[0] == H
    _check(m, [(1, 3, 4, 5), (2, 3, 7, 1)])


@pytest.mark.parametrize("to,value,expect", [(T.FLOAT16, 4097, 4096), (T.FLOAT, 2 ** 24 + 1, 2 ** 24),
                                            (T.INT32, 7, 7)])
def test_concrete_casts_round_like_the_dtype(to, value, expect):
    """Constant shape values are cast in the target dtype (fp16 cannot hold 4097)."""
    from tensorforge.ops.symvalue import as_number, to_float
    from tensorforge import dtypes
    dt = dtypes.from_onnx(to)
    got = to_float(value, dt) if dt.startswith("float") else as_number(value, dt)
    assert got == expect
    assert to_float(H, "float16") is None  # a symbolic dim may exceed fp16's exact integers


def test_symvalue_helpers_refuse_inexact_results():
    from tensorforge.ops.symvalue import float_binary, rounded, to_int
    add = lambda a, b: a + b  # noqa: E731
    assert float_binary(add, H, sympy.Rational(1, 2), "float32") == H + sympy.Rational(1, 2)
    assert float_binary(add, H, 0.1, "float32") is None  # 0.1 is not exact in binary
    assert float_binary(lambda a, b: a * b, H / 3, 3, "float32") is None  # two roundings: unknown
    assert float_binary(lambda a, b: a / b, H, 3, "float32") == H / 3
    assert rounded(H / 3, "floor") == sympy.floor(H / 3) and rounded(2.5, "round") == 2
    assert to_int(-H / 2) == sympy.ceiling(-H / 2) and to_int(3.9) == 3 and to_int(-3.9) == -3


def test_float_values_through_tensor_ops_and_back():
    """[H, W] as floats through Unsqueeze, Concat, Slice, Gather, Squeeze, Min/Max, Sub, Neg, Where,
    Less, then back to int64 sizes: every step keeps the exact symbolic value."""
    nodes, inits = _dims()
    nodes += [h.make_node("Cast", ["d2"], ["hf"], to=T.FLOAT), h.make_node("Cast", ["d3"], ["wf"], to=T.FLOAT),
              h.make_node("Unsqueeze", ["hf", "ax0"], ["h1"]), h.make_node("Unsqueeze", ["wf", "ax0"], ["w1"]),
              h.make_node("Concat", ["h1", "w1", "eight"], ["hw8"], axis=0),
              h.make_node("Slice", ["hw8", "s0", "s2", "ax0"], ["hw"]),
              h.make_node("Gather", ["hw", "idx10"], ["wh"], axis=0),
              h.make_node("Min", ["hw", "wh"], ["mn"]), h.make_node("Max", ["hw", "wh"], ["mx"]),
              h.make_node("Sub", ["mx", "mn"], ["diff"]), h.make_node("Neg", ["diff"], ["nd"]),
              h.make_node("Less", ["zero", "mx"], ["lt"]),  # 0 < a positive dim: decidable
              h.make_node("Where", ["lt", "mx", "mn"], ["pick"]),
              h.make_node("Cast", ["pick"], ["sizes"], to=T.INT64),
              h.make_node("ConstantOfShape", ["sizes"], ["f_big"], value=h.make_tensor("v", T.FLOAT, [1], [1.0])),
              h.make_node("Slice", ["hw", "s0", "s1", "ax0"], ["hh"]), h.make_node("Squeeze", ["hh", "ax0"], ["hs"]),
              h.make_node("Cast", ["hs"], ["hsi"], to=T.INT64), h.make_node("Cast", ["nd"], ["f_nd"], to=T.FLOAT)]
    inits += [_c("ax0", T.INT64, [0]), _c("eight", T.FLOAT, [8.0]), _c("s0", T.INT64, [0]),
              _c("s1", T.INT64, [1]), _c("s2", T.INT64, [2]), _c("idx10", T.INT64, [1, 0]), _c("zero", T.FLOAT, 0.0)]
    m = _model(nodes, ["f_big", "hsi", "f_nd"], inits)
    g = frontend.load(m)
    big = sympy.Max(H, W)
    assert list(g.values["sizes"].sym) == [big, big] and g.values["f_big"].shape == (big, big)
    assert g.values["hsi"].sym.item() == H and list(g.values["nd"].sym) == [sympy.Min(H, W) - big] * 2
    eng = _check(m, [(1, 3, 4, 6), (1, 3, 5, 2), (2, 3, 3, 3)])
    from tensorforge.runtime.engine import Engine
    loaded = Engine.deserialize(eng.serialize())  # float shape values survive the engine file
    feed = {"x": np.ones((1, 3, 7, 2), np.float32)}
    got, ref = loaded.create_execution_context().infer(feed), run_ort(m, feed)
    for name, r in ref.items():
        np.testing.assert_array_equal(got[name].numpy(), r)
