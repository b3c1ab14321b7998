"""Rule NormPrologue (passes/norm_prologue.py): a pointwise layer read only by a LayerNorm / RMSNorm becomes the
norm's prologue, its other inputs the norm's extras after the ones it had; checked against the references before
and after, on random inputs, and on the zoo's BERT against ONNX Runtime."""
import numpy as np
import pytest

from tensorforge.passes import fuse_norms, fuse_pointwise, norm_prologues

from .util import check, init, model, node, ops, randn

PIPE = [fuse_norms, fuse_pointwise, norm_prologues]
RNG = np.random.default_rng(0)
GAMMA, BETA = init("gamma", RNG.standard_normal(8).astype(np.float32)), init("beta", RNG.standard_normal(8).astype(np.float32))
POS = init("pos", RNG.standard_normal((1, 5, 8)).astype(np.float32))
FEED = {"x": randn((2, 5, 8), seed=1), "t": randn((2, 5, 8), seed=2)}
LN = ("LayerNormalization", ["s", "gamma", "beta"], ["y"], {"epsilon": 1e-5})


def test_position_embedding_add_becomes_the_prologue():
    """ViT's x + pos[1, S, D] -> LayerNorm: one layer, x its input, pos an extra (broadcast over the batch)."""
    m = model([("Add", ["x", "pos"], ["s"]), LN], [("x", [2, 5, 8])], ["y"], [GAMMA, BETA, POS])
    g = check(m, FEED, PIPE)
    n = node(g, "fused.LayerNorm")
    assert ops(g) == ["fused.LayerNorm"] and n.inputs[0].name == "x" and n.inputs[3].name == "pos"
    assert [d["op"] for d in n.attrs["prologue"]["nodes"]] == ["input", "input", "Add"]


def test_three_way_sum_with_the_broadcast_input_first():
    """BERT's embeddings: pos + x + t (fused into one pointwise layer first); input 0 is a full-shape input even
    when the broadcast one comes first; also as an RMSNorm."""
    sm = [("Add", ["pos", "x"], ["a"]), ("Add", ["a", "t"], ["s"])]
    m = model(sm + [LN], [("x", [2, 5, 8]), ("t", [2, 5, 8])], ["y"], [GAMMA, BETA, POS])
    g = check(m, FEED, PIPE)
    n = node(g, "fused.LayerNorm")
    assert ops(g) == ["fused.LayerNorm"] and tuple(n.inputs[0].shape) == (2, 5, 8) and len(n.inputs) == 5
    rms = [("Mul", ["s", "s"], ["sq"]), ("ReduceMean", ["sq"], ["ms"], {"axes": [-1]}),
           ("Add", ["ms", "eps"], ["mse"]), ("Sqrt", ["mse"], ["r"]), ("Div", ["s", "r"], ["y"])]
    m = model(sm + rms, [("x", [2, 5, 8]), ("t", [2, 5, 8])], ["y"], [POS, init("eps", np.float32(1e-6))])
    g = check(m, FEED, PIPE, atol=2e-5)
    assert ops(g) == ["fused.RMSNorm"] and node(g, "fused.RMSNorm").attrs.get("prologue")


def test_existing_extras_keep_their_indices():
    """A norm with an epilogue over an extra (LN(s) * gate): the prologue's inputs come after that extra."""
    nodes = [("Add", ["x", "pos"], ["s"]), ("LayerNormalization", ["s", "gamma", "beta"], ["ln"], {}),
             ("Mul", ["ln", "t"], ["y"])]
    m = model(nodes, [("x", [2, 5, 8]), ("t", [2, 5, 8])], ["y"], [GAMMA, BETA, POS])
    from tensorforge.passes import fuse_epilogue
    g = check(m, FEED, [fuse_norms, fuse_pointwise, fuse_epilogue, norm_prologues])
    n = node(g, "fused.LayerNorm")
    assert n.attrs.get("epilogue") and n.attrs.get("prologue") and [v.name for v in n.inputs[3:]] == ["t", "pos"]


@pytest.mark.parametrize("case", ["other_reader", "graph_output", "long_row", "shape_change", "no_full_input",
                                  "bool_input"])
def test_declines(case):
    """The sum read by another layer (ViT FP16: the first residual) or as a graph output; rows longer than the
    single-pass kernel's 8192; a broadcast that grows the norm's input; no input of the norm's shape; a bool
    operand (the norm kernel reads float extras)."""
    d = 8200 if case == "long_row" else 8
    x = [("x", [2, 5, d])]
    gamma, beta = init("gamma", np.ones(d, np.float32)), init("beta", np.zeros(d, np.float32))
    pos = init("pos", np.ones((1, 5, d), np.float32))
    feed = {"x": randn((2, 5, d), seed=1)}
    nodes, outs = [("Add", ["x", "pos"], ["s"]), LN], ["y"]
    if case == "other_reader":
        nodes.append(("Mul", ["s", "s"], ["z"]))
        outs.append("z")
    elif case == "graph_output":
        outs.append("s")
    elif case == "shape_change":  # x [2, 1, 8] + pos [1, 5, 8] -> [2, 5, 8]
        x, feed = [("x", [2, 1, 8])], {"x": randn((2, 1, 8), seed=1)}
    elif case == "no_full_input":
        x, feed = [("x", [2, 5, 1])], {"x": randn((2, 5, 1), seed=1)}
    elif case == "bool_input":  # Where(mask, x, pos) with a bool graph input
        nodes = [("Where", ["m", "x", "pos"], ["s"]), LN]
        x = x + [("m", 9, [2, 5, d])]  # TensorProto.BOOL
        feed = dict(feed, m=randn((2, 5, d), seed=3) > 0)
    g = check(model(nodes, x, outs, [gamma, beta, pos]), feed, PIPE, atol=2e-5)
    assert not node(g, "fused.LayerNorm").attrs.get("prologue"), ops(g)


def test_bert_embeddings_sum_in_the_first_norm_matches_ort():
    """The zoo's BERT (small), FP32 and FP16 CPU engines: the embedding sum is the first LayerNorm's prologue (one
    layer less) and the outputs agree with ONNX Runtime."""
    import tensorforge as tf
    from tensorforge import zoo
    from tensorforge.testing import run_ort
    m, feeds = zoo.get_model("bert_base_small"), zoo.random_inputs("bert_base_small", 2, seed=5)
    ref = run_ort(m, feeds)
    for fp16, tol in ((False, 1e-4), (True, 2e-2)):
        eng = tf.Builder(tf.BuilderConfig(device="cpu", opt_level=0, fp16=fp16)).build(m)
        first = next(lay for lay in eng.plan.layers if lay.type == "fused.LayerNorm")
        assert first.attrs.get("prologue") and not [lay for lay in eng.plan.layers if lay.name.startswith(
            "fusedPointwiseNode(embeddings")]
        got = eng.create_execution_context().infer(feeds)
        for k, r in ref.items():
            g = got[k].float().numpy()
            assert np.abs(g - r).max() <= tol * max(1.0, float(np.abs(r).max())), (fp16, k)
