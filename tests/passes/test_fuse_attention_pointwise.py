import math

import numpy as np

from tensorforge.passes import cse, fuse_attention, fuse_pointwise

from .util import check, init, model, node, ops, randn

B, L, H, D = 2, 5, 3, 4
E = H * D
RNG = np.random.default_rng(0)


def _heads(x, y, perm, p):
    return [("Reshape", [x, "hshape"], [f"{p}r"], {}, f"{p}.reshape"),
            ("Transpose", [f"{p}r"], [y], {"perm": perm}, f"{p}.transpose")]


def _bert_like(mask=True, where=False):
    nodes = _heads("q", "q4", [0, 2, 1, 3], "q") + _heads("k", "kt", [0, 2, 3, 1], "k") + \
        _heads("v", "v4", [0, 2, 1, 3], "v")
    nodes += [("MatMul", ["q4", "kt"], ["s"], {}, "qk"), ("Div", ["s", "sqrtd"], ["s1"], {}, "scale")]
    last = "s1"
    if where:
        nodes.append(("Where", ["causal", last, "minf"], ["s2"], {}, "causal"))
        last = "s2"
    if mask:
        nodes.append(("Add", [last, "mask"], ["s3"], {}, "mask_add"))
        last = "s3"
    nodes += [("Softmax", [last], ["p"], {"axis": -1}, "softmax"), ("MatMul", ["p", "v4"], ["o"], {}, "pv"),
              ("Transpose", ["o"], ["ot"], {"perm": [0, 2, 1, 3]}, "merge.transpose"),
              ("Reshape", ["ot", "mshape"], ["y"], {}, "merge.reshape")]
    inits = [init("hshape", np.array([0, L, H, D], np.int64)), init("mshape", np.array([0, L, E], np.int64)),
             init("sqrtd", np.float32(math.sqrt(D))), init("minf", np.float32(np.finfo(np.float32).min)),
             init("causal", np.tril(np.ones((L, L), bool))[None, None])]
    ins = [("q", ["N", L, E]), ("k", ["N", L, E]), ("v", ["N", L, E])]
    if mask:
        ins.append(("mask", ["N", 1, 1, L]))
    feed = {n: randn((B, L, E), seed=i) for i, n in enumerate("qkv")}
    feed["mask"] = np.where(RNG.random((B, 1, 1, L)) > 0.3, 0, -10000).astype(np.float32)
    return model(nodes, ins, ["y"], inits), feed


def test_attention_with_mask_and_head_views():
    m, feed = _bert_like()
    g = check(m, feed, [fuse_attention])
    n = node(g, "fused.Attention")
    assert ops(g) == ["fused.Attention"] and [v.name for v in n.inputs] == ["q", "k", "v", "mask"]
    assert abs(n.attrs["scale"] - 1 / math.sqrt(D)) < 1e-7 and n.attrs["out_view"][0][0] == "transpose"
    assert n.origin[:2] == ["q.reshape", "q.transpose"] and "softmax" in n.origin


def test_attention_without_mask_and_with_causal_where():
    m, feed = _bert_like(mask=False)
    g = check(m, feed, [fuse_attention])
    assert ops(g) == ["fused.Attention"] and g.nodes[0].inputs[3] is None
    m, feed = _bert_like(mask=True, where=True)
    g = check(m, feed, [fuse_attention, fuse_pointwise])
    assert ops(g) == ["fused.Pointwise", "fused.Attention"]  # Where(c, 0, min) + mask, then attention


def test_attention_declines_when_scores_have_another_user():
    m, feed = _bert_like()
    m.graph.node.append(__import__("onnx").helper.make_node("Relu", ["s1"], ["extra"], name="relu"))
    m.graph.output.append(__import__("onnx").helper.make_tensor_value_info("extra", 1, None))
    g = check(m, feed, [fuse_attention])
    assert "fused.Attention" not in ops(g)


def test_attention_declines_where_with_small_fill():
    m, feed = _bert_like(mask=False, where=True)
    for t in m.graph.initializer:
        if t.name == "minf":
            t.raw_data = np.float32(-100.0).tobytes()
    g = check(m, feed, [fuse_attention])
    assert "fused.Attention" not in ops(g)


def test_attention_packed_qkv_gather_and_split():
    nodes = [("Reshape", ["qkv", "shape5"], ["r"], {}, "r"), ("Transpose", ["r"], ["t"], {"perm": [2, 0, 3, 1, 4]}, "t")]
    nodes += [("Gather", ["t", f"i{j}"], [f"g{j}"], {"axis": 0}, f"g{j}") for j in range(3)]
    nodes += [("Transpose", ["g1"], ["kt"], {"perm": [0, 1, 3, 2]}, "kt"), ("MatMul", ["g0", "kt"], ["s"], {}, "qk"),
              ("Mul", ["s", "scale"], ["s1"], {}, "sc"), ("Softmax", ["s1"], ["p"], {"axis": -1}, "sm"),
              ("MatMul", ["p", "g2"], ["y"], {}, "pv")]
    inits = [init("shape5", np.array([0, L, 3, H, D], np.int64)), init("scale", np.float32(0.3))] + \
        [init(f"i{j}", np.int64(j)) for j in range(3)]
    m = model(nodes, [("qkv", ["N", L, 3 * E])], ["y"], inits)
    g = check(m, {"qkv": randn((B, L, 3 * E))}, [fuse_attention])
    n = node(g, "fused.Attention")
    assert [v.name for v in n.inputs[:3]] == ["qkv"] * 3 and n.attrs["q_view"][-1] == ["select", 0, 0]
    split = [("Split", ["qkv", "sizes"], ["a", "b", "c"], {"axis": 2}, "split")] + \
        _heads("a", "q4", [0, 2, 1, 3], "q") + _heads("b", "kt", [0, 2, 3, 1], "k") + _heads("c", "v4", [0, 2, 1, 3], "v") + \
        [("MatMul", ["q4", "kt"], ["s"], {}, "qk"), ("Softmax", ["s"], ["p"], {"axis": -1}, "sm"),
         ("MatMul", ["p", "v4"], ["y"], {}, "pv")]
    m = model(split, [("qkv", ["N", L, 3 * E])], ["y"],
              [init("sizes", np.array([E] * 3, np.int64)), init("hshape", np.array([0, L, H, D], np.int64))])
    g = check(m, {"qkv": randn((B, L, 3 * E))}, [fuse_attention])
    assert ops(g) == ["fused.Attention"] and node(g, "fused.Attention").attrs["k_view"][0] == ["narrow", 2, E, E]


def test_pointwise_tree_with_broadcast_where_and_cast():
    nodes = [("Sub", ["x", "b"], ["d"], {}, "sub"), ("Mul", ["d", "two"], ["m"], {}, "mul"),
             ("Greater", ["x", "zero"], ["gt"], {}, "gt"), ("Where", ["gt", "m", "b"], ["w"], {}, "where"),
             ("Cast", ["w"], ["c"], {"to": 10}, "cast"), ("Cast", ["c"], ["y"], {"to": 1}, "back")]
    inits = [init("two", np.float32(2)), init("zero", np.float32(0))]
    m = model(nodes, [("x", [2, 3, 4]), ("b", [3, 1])], ["y"], inits)
    g = check(m, {"x": randn((2, 3, 4)), "b": randn((3, 1), seed=5)}, [fuse_pointwise])
    n = node(g, "fused.Pointwise")
    assert n.name == "fusedPointwiseNode(sub, mul, gt, where, cast, back)" and [v.name for v in n.inputs] == ["x", "b"]


def test_pointwise_int_ops_and_rank_raising_scalar():
    nodes = [("Div", ["i", "three"], ["q"]), ("Mod", ["q", "four"], ["r"]), ("Add", ["r", "one"], ["y"])]
    inits = [init("three", np.int32(3)), init("four", np.int32(4)), init("one", np.ones((1, 1), np.int32))]
    m = model(nodes, [("i", 6, [5])], [("y", 6, None)], inits)
    g = check(m, {"i": np.arange(-7, 8, 3, dtype=np.int32)}, [fuse_pointwise])
    assert ops(g) == ["fused.Pointwise"] and g.nodes[0].outputs[0].shape == (1, 5)


def test_pointwise_declines_shared_intermediate_and_graph_output():
    nodes = [("Exp", ["x"], ["e"], {}, "exp"), ("Neg", ["e"], ["n"], {}, "neg"), ("Add", ["n", "e"], ["y"], {}, "add"),
             ("Relu", ["x"], ["r"], {}, "relu"), ("Abs", ["r"], ["z"], {}, "abs")]
    m = model(nodes, [("x", [4])], ["y", "r", "z"])
    g = check(m, {"x": randn((4,))}, [fuse_pointwise])
    assert ops(g) == ["fused.Pointwise", "Relu", "Abs"]
    assert g.nodes[0].name == "fusedPointwiseNode(exp, neg, add)"


def test_cse_shares_attention_masks():
    m, feed = _bert_like(mask=True, where=True)
    g = check(m, feed, [fuse_attention, cse, fuse_pointwise])
    assert len(g.nodes) == 2


def test_pointwise_expression_follows_input_dtype_after_precision_change():
    import torch
    from tensorforge.ops import registry
    nodes = [("Mul", ["x", "half"], ["a"]), ("Where", ["c", "minf", "a"], ["y"])]
    m = model(nodes, [("x", [2, 3]), ("c", 9, [2, 3])], ["y"], [init("half", np.float32(0.5)),
                                                             init("minf", np.float32(-1e4))])
    g = check(m, {"x": randn((2, 3)), "c": np.array([[True, False, True]] * 2)}, [fuse_pointwise])
    n = node(g, "fused.Pointwise")
    n.inputs[0].dtype = "float16"  # what a precision pass does to the layer's input
    (dt, _), = registry.get(n.op).infer(n)
    out = registry.get(n.op).run([torch.ones(2, 3, dtype=torch.float16), torch.zeros(2, 3, dtype=torch.bool)],
                                 n.attrs, 17)[0]
    assert dt == "float16" and out.dtype == torch.float16
