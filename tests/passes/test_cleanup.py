import numpy as np

from tensorforge.passes import cse, dce, eliminate_identity, fold_constants

from .util import check, init, model, ops, randn

CLEAN = [fold_constants, eliminate_identity, cse, dce]


def test_fold_constants_and_shape_arithmetic():
    # scale = 1 / sqrt(float(shape(x)[-1])) is folded, and so is a pure-constant subgraph
    nodes = [("Shape", ["x"], ["s"]), ("Gather", ["s", "last"], ["d"], {"axis": 0}),
             ("Cast", ["d"], ["df"], {"to": 1}), ("Sqrt", ["df"], ["sd"]), ("Reciprocal", ["sd"], ["r"]),
             ("Add", ["c1", "c2"], ["c3"]), ("Mul", ["x", "r"], ["t"]), ("Add", ["t", "c3"], ["y"])]
    inits = [init("last", np.int64(-1)), init("c1", np.ones(5, np.float32)), init("c2", np.ones(5, np.float32))]
    m = model(nodes, [("x", [2, 5])], ["y"], inits)
    g = check(m, {"x": randn((2, 5))}, CLEAN)
    assert ops(g) == ["Mul", "Add"]
    assert abs(float(g.nodes[0].inputs[1].const) - 1 / np.sqrt(5)) < 1e-7


def test_dynamic_shape_values_stay_symbolic():
    nodes = [("Shape", ["x"], ["s"]), ("Gather", ["s", "zero"], ["n"], {"axis": 0}),
             ("Unsqueeze", ["n", "ax"], ["nu"]), ("Concat", ["nu", "m1"], ["tgt"], {"axis": 0}),
             ("Reshape", ["x", "tgt"], ["y"])]
    inits = [init("zero", np.int64(0)), init("ax", np.array([0], np.int64)), init("m1", np.array([-1], np.int64))]
    m = model(nodes, [("x", ["N", 3, 4])], ["y"], inits)
    g = check(m, {"x": randn((2, 3, 4))}, CLEAN)
    assert ops(g) == ["Reshape"] and g.nodes[0].inputs[1].sym is not None


def test_dce_removes_unused_chains():
    m = model([("Relu", ["x"], ["a"]), ("Exp", ["a"], ["b"]), ("Neg", ["x"], ["y"])], [("x", [3])], ["y"])
    g = check(m, {"x": randn((3,))}, CLEAN)
    assert ops(g) == ["Neg"]


def test_identity_dropout_cast_same_type():
    nodes = [("Identity", ["x"], ["a"]), ("Dropout", ["a"], ["b"]), ("Cast", ["b"], ["c"], {"to": 1}),
             ("Relu", ["c"], ["d"]), ("Cast", ["d"], ["y"], {"to": 10})]
    m = model(nodes, [("x", [3, 4])], [("y", 10, None)])
    g = check(m, {"x": randn((3, 4))}, CLEAN)
    assert ops(g) == ["Relu", "Cast"]  # the fp16 cast stays


def test_identity_on_graph_output_keeps_the_output_name():
    m = model([("Relu", ["x"], ["a"]), ("Identity", ["a"], ["y"])], [("x", [3])], ["y"])
    g = check(m, {"x": randn((3,))}, CLEAN)
    assert ops(g) == ["Relu"] and g.outputs[0].name == "y"


def test_view_chains_collapse():
    nodes = [("Flatten", ["x"], ["a"], {"axis": 1}), ("Unsqueeze", ["a", "ax"], ["b"]),
             ("Reshape", ["b", "shp"], ["c"]), ("Squeeze", ["c", "ax0"], ["y"])]
    inits = [init("ax", np.array([0], np.int64)), init("shp", np.array([1, 2, 12], np.int64)),
             init("ax0", np.array([0], np.int64))]
    m = model(nodes, [("x", [2, 3, 4])], ["y"], inits)
    g = check(m, {"x": randn((2, 3, 4))}, CLEAN)
    assert ops(g) == ["Reshape"]
    assert g.nodes[0].name == "flatten0 + unsqueeze1 + squeeze3"  # reshape2 was a no-op


def test_view_chain_with_dynamic_batch():
    nodes = [("Reshape", ["x", "s1"], ["a"]), ("Reshape", ["a", "s2"], ["y"])]
    inits = [init("s1", np.array([0, 12], np.int64)), init("s2", np.array([0, 3, 2, 2], np.int64))]
    m = model(nodes, [("x", ["N", 3, 4])], ["y"], inits)
    g = check(m, {"x": randn((5, 3, 4))}, CLEAN)
    assert ops(g) == ["Reshape"] and g.nodes[0].inputs[1].const.tolist() == [0, 3, 2, 2]


def test_reshape_to_same_shape_and_shared_view_kept():
    nodes = [("Reshape", ["x", "s"], ["a"]), ("Relu", ["a"], ["r"]), ("Flatten", ["a"], ["f"], {"axis": 0}),
             ("Reshape", ["r", "s"], ["y"])]
    m = model(nodes, [("x", [2, 6])], ["y", "f"], [init("s", np.array([2, 6], np.int64))])
    g = check(m, {"x": randn((2, 6))}, CLEAN)
    assert ops(g) == ["Relu", "Flatten"]  # both same-shape reshapes vanish; flatten reads x directly


def test_transposes_cancel_and_merge():
    nodes = [("Transpose", ["x"], ["a"], {"perm": [0, 2, 1, 3]}), ("Transpose", ["a"], ["b"], {"perm": [0, 2, 1, 3]}),
             ("Relu", ["b"], ["r"]), ("Transpose", ["r"], ["c"], {"perm": [1, 0, 2, 3]}),
             ("Transpose", ["c"], ["y"], {"perm": [0, 1, 3, 2]})]
    m = model(nodes, [("x", [2, 3, 4, 5])], ["y"])
    g = check(m, {"x": randn((2, 3, 4, 5))}, CLEAN)
    assert ops(g) == ["Relu", "Transpose"] and g.nodes[1].attrs["perm"] == [1, 0, 3, 2]


def test_cse_merges_duplicates_and_equal_constants():
    nodes = [("Mul", ["x", "c1"], ["a"]), ("Mul", ["x", "c2"], ["b"]), ("Exp", ["a"], ["ea"]),
             ("Exp", ["b"], ["eb"]), ("Add", ["ea", "eb"], ["y"]),
             ("Softmax", ["x"], ["s1"], {"axis": 0}), ("Softmax", ["x"], ["s2"], {"axis": 1}),
             ("Add", ["s1", "s2"], ["z"])]
    inits = [init("c1", np.float32(2.0)), init("c2", np.float32(2.0))]
    m = model(nodes, [("x", [3, 4])], ["y", "z"], inits)
    g = check(m, {"x": randn((3, 4))}, CLEAN)
    assert ops(g) == ["Mul", "Exp", "Add", "Softmax", "Softmax", "Add"]
