"""Patch-embedding Conv -> GEMM, and Transpose/Reshape chains that collapse to a reshape (or nothing)."""
import collections

import numpy as np
import pytest

from tensorforge import frontend, passes, zoo
from tensorforge.passes import fuse_epilogue, fuse_gemm, patchify_convs
from tensorforge.testing import check_against_ort, rand, run_ort

from .util import check, init, model, ops, randn, run_graph

PATCH = [patchify_convs, fuse_gemm, fuse_epilogue]


def _conv_model(x=(2, 3, 16, 12), k=(4, 4), cout=8, bias=True, tail=(), outs=("y",), **attrs):
    """Conv(x, w[, b]) with stride = kernel by default, then optional tail nodes."""
    ins = ["x", "w"] + (["b"] if bias else [])
    conv = ("Conv", ins, ["y"], {"kernel_shape": list(k), "strides": list(k), **attrs}, "patch")
    inits = [init("w", randn((cout, x[1] // attrs.get("group", 1)) + tuple(k), seed=5, lo=-0.3, hi=0.3))]
    if bias:
        inits.append(init("b", randn((cout,), seed=6)))
    return model([conv, *tail], [("x", list(x))], list(outs), inits)


def _feed(shape=(2, 3, 16, 12), seed=1):
    return {"x": randn(shape, seed=seed)}


@pytest.mark.parametrize("k,bias", [((4, 4), True), ((2, 3), False), ((4, 1), True)])
def test_patch_conv_becomes_gemm_and_matches(k, bias):
    m = _conv_model(k=k, bias=bias)
    g = check(m, _feed(), PATCH)
    assert "Conv" not in ops(g)
    gemm = "fused.MatMulAct" if bias else "MatMul"
    assert ops(g) == ["Reshape", "Transpose", "Reshape", gemm, "Reshape", "Transpose"]
    mm = g.nodes[3]
    assert (len(mm.inputs) > 2) == bias and tuple(mm.inputs[1].shape) == (3 * k[0] * k[1], 8)
    assert mm.origin == ["patch"] and mm.name == "patch"


def test_patch_conv_full_pipeline_against_ort():
    m = _conv_model(x=(3, 4, 8, 8), k=(4, 4), tail=[("Relu", ["y"], ["z"])], outs=("z",))
    check_against_ort(m, _feed((3, 4, 8, 8), seed=2))


@pytest.mark.parametrize("why,kw", [
    ("pads", dict(pads=[1, 1, 1, 1], x=(2, 3, 14, 10))),
    ("stride != kernel", dict(strides=[2, 2])),
    ("groups", dict(group=3, cout=6)),
    ("dilation", dict(dilations=[2, 2], x=(2, 3, 16, 16))),
    ("H not divisible", dict(x=(2, 3, 18, 12))),
    ("1x1", dict(k=(1, 1))),
    ("k1*k2 < 4", dict(k=(1, 3))),
])
def test_patchify_declines(why, kw):
    shape = kw.get("x", (2, 3, 16, 12))
    m = _conv_model(**kw)
    g = check(m, _feed(shape), [patchify_convs])
    assert ops(g) == ["Conv"], why


def test_non_constant_weight_declines():
    conv = ("Conv", ["x", "w"], ["y"], {"kernel_shape": [4, 4], "strides": [4, 4]})
    m = model([conv], [("x", [2, 3, 8, 8]), ("w", [5, 3, 4, 4])], ["y"])
    g = check(m, {"x": randn((2, 3, 8, 8)), "w": randn((5, 3, 4, 4), seed=2)}, [patchify_convs])
    assert ops(g) == ["Conv"]


def _vit_tokens_model(dynamic_shape: bool):
    """torchvision ViT: conv_proj -> reshape(n, hidden, P) -> permute(0, 2, 1), batch dynamic."""
    if dynamic_shape:  # the legacy exporter's Shape -> Gather -> Unsqueeze -> Concat target
        tail = [("Shape", ["y"], ["s"]), ("Gather", ["s", "zero"], ["n"], {"axis": 0}),
                ("Unsqueeze", ["n", "ax0"], ["n1"]), ("Concat", ["n1", "rest"], ["tgt"], {"axis": 0})]
    else:
        tail = []
    tail += [("Reshape", ["y", "tgt"], ["r"]), ("Transpose", ["r"], ["t"], {"perm": [0, 2, 1]})]
    ins = ["x", "w", "b"]
    conv = ("Conv", ins, ["y"], {"kernel_shape": [4, 4], "strides": [4, 4]}, "conv_proj")
    inits = [init("w", randn((8, 3, 4, 4), seed=5, lo=-0.3, hi=0.3)), init("b", randn((8,), seed=6)),
             init("zero", np.array(0, np.int64)), init("ax0", np.array([0], np.int64)),
             init("rest", np.array([8, -1], np.int64))]
    if not dynamic_shape:
        inits.append(init("tgt", np.array([0, 8, 12], np.int64)))
    return model([conv] + tail, [("x", ["N", 3, 16, 12])], ["t"], inits)


@pytest.mark.parametrize("dynamic_shape", [False, True])
def test_vit_tokenization_collapses(dynamic_shape):
    m = _vit_tokens_model(dynamic_shape)
    g = check(m, _feed((3, 3, 16, 12)), [passes.fold_constants, passes.dce] + PATCH)
    assert ops(g) == ["Reshape", "Transpose", "Reshape", "fused.MatMulAct"]
    assert g.outputs[0].name == "t" and g.outputs[0].producer is g.nodes[-1]
    check_against_ort(m, _feed((3, 3, 16, 12), seed=4))


def _chain_model(x, steps, pre=(), post=(), src="x", out="y"):
    """pre nodes, then a Reshape/Transpose chain from `src` to its last value, then post nodes."""
    nodes, inits, cur = list(pre), [], src
    for i, (op, arg) in enumerate(steps):
        nxt = (post[0][1][0] if post else out) if i == len(steps) - 1 else f"v{i}"
        if op == "Transpose":
            nodes.append(("Transpose", [cur], [nxt], {"perm": arg}))
        else:
            inits.append(init(f"s{i}", np.array(arg, np.int64)))
            nodes.append(("Reshape", [cur, f"s{i}"], [nxt]))
        cur = nxt
    return model(nodes + list(post), [("x", list(x))], [out], inits)


NCHW_ROUND_TRIP = [("Transpose", [0, 2, 3, 1]), ("Reshape", [2, 15, 4]), ("Transpose", [0, 2, 1]),
                   ("Reshape", [2, 4, 3, 5])]


@pytest.mark.parametrize("x,steps,want", [
    # identity: split a dim, move it around and back (graph input -> output: one Reshape copy stays)
    ((2, 6, 10), [("Reshape", [2, 6, 2, 5]), ("Transpose", [0, 2, 3, 1]), ("Transpose", [0, 3, 1, 2]),
                  ("Reshape", [2, 6, 10])], ["Reshape"]),
    # a Transpose that only moves a size-1 axis, then a merge: a pure reshape
    ((3, 1, 8), [("Transpose", [0, 2, 1]), ("Reshape", [3, 8])], ["Reshape"]),
    # NCHW -> NHWC-flatten -> NCHW-split is the identity on [N, O, h, w]
    ((2, 4, 3, 5), NCHW_ROUND_TRIP, ["Reshape"]),
    # a real permutation (pixel-shuffle-like) stays
    ((2, 4, 3, 5), [("Reshape", [2, 2, 2, 3, 5]), ("Transpose", [0, 1, 3, 2, 4]), ("Reshape", [2, 4, 3, 5])],
     ["Reshape", "Transpose", "Reshape"]),
    ((2, 4, 6), [("Transpose", [0, 2, 1]), ("Reshape", [2, 4, 6])], ["Transpose", "Reshape"]),
])
def test_view_chains(x, steps, want):
    g = check(_chain_model(x, steps), {"x": randn(x, seed=2)}, [patchify_convs])
    assert ops(g) == want


def test_identity_chain_inside_a_graph_is_bypassed():
    m = _chain_model((2, 4, 3, 5), NCHW_ROUND_TRIP, pre=[("Relu", ["x"], ["r"])], post=[("Neg", ["c"], ["y"])],
                     src="r")
    g = check(m, {"x": randn((2, 4, 3, 5), seed=3)}, [patchify_convs])
    assert ops(g) == ["Relu", "Neg"]


def test_chain_value_with_another_reader_is_kept():
    post = [("Flatten", ["c"], ["fc"]), ("Flatten", ["v1"], ["f1"]), ("Add", ["fc", "f1"], ["y"])]
    m = _chain_model((2, 4, 3, 5), NCHW_ROUND_TRIP, pre=[("Relu", ["x"], ["r"])], post=post, src="r")
    g = check(m, {"x": randn((2, 4, 3, 5), seed=4)}, [patchify_convs])
    assert ops(g).count("Transpose") == 1 and ops(g)[-1] == "Add"
    direct = [v.producer for v in g.nodes[-1].inputs if v.producer.inputs[0].producer.op == "Relu"]
    assert [n.op for n in direct] == ["Reshape"]


def test_vit_b16_small_patch_embedding():
    m = zoo.get_model("vit_b16_small")
    g = passes.run_pipeline(frontend.load(m), check=True)
    hist = collections.Counter(n.op for n in g.nodes)
    assert "Conv" not in hist and hist["Transpose"] == 1 and hist["fused.MatMulAct"] == 9
    x = g.inputs[0]
    r6 = x.users[0]
    t = r6.outputs[0].users[0]
    r3 = t.outputs[0].users[0]
    mm = r3.outputs[0].users[0]
    assert [r6.op, t.op, r3.op, mm.op] == ["Reshape", "Transpose", "Reshape", "fused.MatMulAct"]
    assert mm.inputs[2] is not None and not mm.attrs.get("epilogue")
    assert [u.op for u in mm.outputs[0].users] == ["Concat"]  # no transposes of the GEMM's output
    feed = zoo.random_inputs("vit_b16_small", 2, seed=7)
    ref, got = run_ort(m, feed), run_graph(g, feed)
    np.testing.assert_allclose(got["output"], ref["output"], rtol=1e-5, atol=1e-5)


def test_vit_b16_small_engine_matches_ort():
    from tensorforge import Builder, BuilderConfig
    from tensorforge.testing import assert_close
    m = zoo.get_model("vit_b16_small")
    eng = Builder(BuilderConfig(device="cpu")).build(m)
    lays = eng.plan.layers
    assert [lay.type for lay in lays[:4]] == ["Reshape", "Transpose", "Reshape", "fused.MatMulAct"]
    assert lays[0].mode == "view" and "Conv" not in {lay.type for lay in lays}
    assert sum(lay.type == "Transpose" for lay in lays) == 1
    feed = {"input": rand((2, 3, 32, 32), seed=11)}
    out = {k: v.numpy() for k, v in eng.create_execution_context().infer(feed).items()}
    assert_close(out, run_ort(m, feed), rtol=1e-5, atol=1e-5)
