"""Sibling GEMM merge: MatMuls sharing an activation become one MatMul (+ bias) and a Split."""
import collections

import numpy as np
import pytest

from tensorforge import frontend, passes, zoo
from tensorforge.passes import fuse_attention, fuse_gemm, merge_gemm
from tensorforge.testing import check_against_ort, run_ort

from .util import check, init, model, node, ops, randn, run_graph

X = [("x", [2, 5, 8])]
FEED = {"x": randn((2, 5, 8), seed=1)}


def _siblings(widths=(8, 8, 4), bias=(True, True, True), bias_first=(), k=8, opset=17, outs=None):
    """MatMul(x, w_i) (+ b_i) for each width, each result fed to its own Neg (or a graph output)."""
    nodes, inits, names = [], [], []
    for i, (n, has_b) in enumerate(zip(widths, bias)):
        inits.append(init(f"w{i}", randn((k, n), seed=10 + i)))
        nodes.append(("MatMul", ["x", f"w{i}"], [f"mm{i}"], {}, f"proj{i}.MatMul"))
        y = f"mm{i}"
        if has_b:
            inits.append(init(f"b{i}", randn((n,), seed=20 + i)))
            args = [f"b{i}", y] if i in bias_first else [y, f"b{i}"]
            nodes.append(("Add", args, [f"a{i}"], {}, f"proj{i}.Add"))
            y = f"a{i}"
        names.append(y)
    if outs is None:
        nodes += [("Neg", [y], [f"y{i}"]) for i, y in enumerate(names)]
        outs = [f"y{i}" for i in range(len(names))]
    return model(nodes, X, outs, inits, opset=opset)


def test_three_projections_merge_into_one_matmul_bias_split():
    g = check(_siblings(bias_first=(1,)), FEED, [merge_gemm])
    assert ops(g) == ["MatMul", "Add", "Split", "Neg", "Neg", "Neg"]
    mm, sp = node(g, "MatMul"), node(g, "Split")
    assert tuple(mm.inputs[1].shape) == (8, 20) and tuple(node(g, "Add").inputs[1].shape) == (20,)
    assert [tuple(o.shape) for o in sp.outputs] == [(2, 5, 8), (2, 5, 8), (2, 5, 4)]
    assert [o.name for o in sp.outputs] == ["a0", "a1", "a2"]  # the old results, same names
    assert mm.name == "proj0.MatMul + proj1.MatMul + proj2.MatMul"
    assert mm.origin == ["proj0.MatMul", "proj1.MatMul", "proj2.MatMul"]


def test_merged_form_fuses_bias_and_matches_ort():
    m = _siblings()
    g = check(m, FEED, [merge_gemm, fuse_gemm])
    assert ops(g) == ["fused.MatMulAct", "Split", "Neg", "Neg", "Neg"]
    check_against_ort(m, {"x": randn((2, 5, 8), seed=9)})


def test_with_and_without_bias_merge_separately():
    m = _siblings(widths=(8, 8, 4, 6), bias=(True, False, True, False))
    g = check(m, FEED, [merge_gemm])
    hist = collections.Counter(ops(g))
    assert hist["MatMul"] == 2 and hist["Split"] == 2 and hist["Add"] == 1


def test_single_matmul_and_graph_outputs_are_left_alone():
    g = check(_siblings(widths=(8,), bias=(True,)), FEED, [merge_gemm])
    assert ops(g) == ["MatMul", "Add", "Neg"]
    g = check(_siblings(outs=["a0", "a1", "a2"]), FEED, [merge_gemm])
    assert ops(g).count("MatMul") == 3 and "Split" not in ops(g)


def test_non_constant_weight_is_not_merged():
    mms = [("MatMul", ["x", f"w{i}"], [f"m{i}"]) for i in range(3)] + [("Neg", [f"m{i}"], [f"y{i}"]) for i in range(3)]
    inits = [init("w0", randn((8, 4))), init("w2", randn((8, 5), seed=2))]
    m = model(mms, X + [("w1", [8, 3])], ["y0", "y1", "y2"], inits)
    g = check(m, {**FEED, "w1": randn((8, 3), seed=3)}, [merge_gemm])
    mms = [n for n in g.nodes if n.op == "MatMul"]
    assert len(mms) == 2 and tuple(mms[0].inputs[1].shape) == (8, 9) and g.nodes[0].op == "MatMul"


def test_row_broadcast_bias_keeps_its_add():
    m = _siblings(widths=(4, 4), bias=(False, False))
    extra = [init("bb", randn((5, 4), seed=7))]
    m = model([("MatMul", ["x", "w0"], ["mm0"]), ("MatMul", ["x", "w1"], ["mm1"]), ("Add", ["mm0", "bb"], ["y0"]),
               ("Neg", ["mm1"], ["y1"])], X, ["y0", "y1"], list(m.graph.initializer) + extra)
    g = check(m, FEED, [merge_gemm])
    assert ops(g) == ["MatMul", "Split", "Add", "Neg"]


@pytest.mark.parametrize("opset", [11, 13])
def test_split_sizes_attribute_or_input_by_opset(opset):
    g = check(_siblings(opset=opset), FEED, [merge_gemm])
    sp = node(g, "Split")
    assert (len(sp.inputs) == 2) == (opset >= 13) and ("split" in sp.attrs) == (opset < 13)


def _block(g, prefix):
    return [n for n in g.nodes if n.origin and all(o.startswith(prefix) for o in n.origin)]


def test_bert_small_one_qkv_gemm_per_block_and_attention_still_fuses():
    m = zoo.get_model("bert_base_small")
    before = passes.run_pipeline(frontend.load(m), [p for p in passes.PIPELINE if p is not merge_gemm])
    g = passes.run_pipeline(frontend.load(m), check=True)
    for i in range(2):
        old, new = _block(before, f"encoder.layer.{i}."), _block(g, f"encoder.layer.{i}.")
        c_old, c_new = (collections.Counter(n.op for n in b) for b in (old, new))
        assert c_old["fused.MatMulAct"] - c_new["fused.MatMulAct"] == 2 and c_new["fused.Attention"] == 1
        assert len(new) == len(old) - 2 and "Split" not in c_new
    att = [n for n in g.nodes if n.op == "fused.Attention"]
    assert all(n.inputs[0] is n.inputs[1] is n.inputs[2] for n in att)
    feed = zoo.random_inputs("bert_base_small", 2, seed=7)
    ref, got, got_before = run_ort(m, feed), run_graph(g, feed), run_graph(before, feed)
    for k, r in ref.items():
        np.testing.assert_allclose(got[k], r, rtol=1e-5, atol=1e-5, err_msg=k)
        np.testing.assert_allclose(got[k], got_before[k], rtol=1e-5, atol=1e-5, err_msg=k)


def test_bert_small_merge_gemm_alone_gives_one_matmul_per_block():
    g = passes.run_pipeline(frontend.load(zoo.get_model("bert_base_small")),
                            list(passes.CLEANUP) + [merge_gemm, fuse_attention], check=True)
    for i in range(2):
        c = collections.Counter(n.op for n in _block(g, f"encoder.layer.{i}.attention.self."))
        assert c["MatMul"] == 1 and c["fused.Attention"] == 1 and c["Split"] == 0


def test_gpt2_small_unchanged_attention_still_fuses():
    g = passes.run_pipeline(frontend.load(zoo.get_model("gpt2_small_small")), check=True)
    assert collections.Counter(n.op for n in g.nodes)["fused.Attention"] == 2


def test_bert_small_engine_on_cpu_matches_ort():
    from tensorforge import Builder, BuilderConfig
    from tensorforge.testing import assert_close
    m = zoo.get_model("bert_base_small")
    eng = Builder(BuilderConfig(device="cpu")).build(m)
    types = collections.Counter(lay.type for lay in eng.layers)
    assert types["fused.MatMulAct"] == 8 and types["fused.Attention"] == 2 and "Split" not in types
    feed = zoo.random_inputs("bert_base_small", 3, seed=5)
    out = {k: v.numpy() for k, v in eng.create_execution_context().infer(feed).items()}
    assert_close(out, run_ort(m, feed), rtol=1e-5, atol=1e-5)
