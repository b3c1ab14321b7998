"""com.microsoft contrib ops: one-node models checked against ONNX Runtime CPU (which implements them)."""
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from tensorforge.ops import registry
from tensorforge.testing import assert_close, rand, run_ort, run_tf

MS = "com.microsoft"
_T = {np.float32: TensorProto.FLOAT, np.int32: TensorProto.INT32, np.int64: TensorProto.INT64,
      np.int8: TensorProto.INT8, np.uint8: TensorProto.UINT8}


def ms_model(op, inputs, inits=None, n_out=1, out_type=TensorProto.FLOAT, **attrs):
    """One com.microsoft node; inputs: ordered {name: array or None}, inits: names fed as initializers."""
    inits = inits or set()
    names = [n if a is not None else "" for n, a in inputs.items()]
    outs = [f"y{j}" for j in range(n_out)]
    node = helper.make_node(op, names, outs, domain=MS, name="n", **attrs)
    g_in = [helper.make_tensor_value_info(n, _T[a.dtype.type], a.shape) for n, a in inputs.items()
            if a is not None and n not in inits]
    init = [numpy_helper.from_array(a, n) for n, a in inputs.items() if a is not None and n in inits]
    types = out_type if isinstance(out_type, list) else [out_type] * n_out
    g = helper.make_graph([node], "g", g_in, [helper.make_tensor_value_info(o, t, None) for o, t in zip(outs, types)],
                          init)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)], ir_version=8)
    feed = {n: a for n, a in inputs.items() if a is not None and n not in inits}
    return m, feed


def _ort(m, feed, threads):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed)))


def check(op, inputs, inits=None, rtol=1e-5, atol=1e-5, n_out=1, out_type=TensorProto.FLOAT, ort_threads=None,
          **attrs):
    m, feed = ms_model(op, inputs, inits, n_out, out_type, **attrs)
    ref = run_ort(m, feed) if ort_threads is None else _ort(m, feed, ort_threads)
    got = run_tf(m, feed)
    assert_close(got, ref, rtol, atol)
    return got, ref


def test_listed_under_domain():
    ops = registry.supported_ops()
    for op in ("Gelu", "FastGelu", "BiasGelu", "QuickGelu", "BiasAdd", "SkipLayerNormalization",
               "EmbedLayerNormalization", "FusedConv", "FusedGemm", "NhwcConv", "QLinearAdd", "QLinearMul",
               "QLinearSigmoid", "QLinearLeakyRelu", "QLinearGlobalAveragePool", "QLinearConcat",
               "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "DynamicQuantizeLSTM", "Attention",
               "MultiHeadAttention", "MatMulNBits", "SkipSimplifiedLayerNormalization", "QuantizeLinear",
               "DequantizeLinear", "FusedMatMul", "QGemm", "QLinearAveragePool", "QLinearConv", "QLinearSoftmax",
               "RotaryEmbedding", "QAttention"):
        assert f"{MS}::{op}" in ops


def test_gelu_family():
    x, b = rand((2, 3, 8), lo=-4, hi=4), rand((8,), seed=1)
    check("Gelu", {"x": x})
    check("BiasGelu", {"x": x, "b": b})
    check("FastGelu", {"x": x})
    check("FastGelu", {"x": x, "b": b})
    check("QuickGelu", {"x": x}, alpha=1.5)


def test_bias_add():
    """ORT implements BiasAdd on CUDA only: the spec's formula x + bias + skip."""
    x, b, sk = rand((2, 3, 8)), rand((8,), seed=1), rand((2, 3, 8), seed=2)
    m, feed = ms_model("BiasAdd", {"x": x, "b": b, "s": sk})
    np.testing.assert_allclose(run_tf(m, feed)["y0"], x + b + sk, rtol=1e-6)


def test_skip_layernorm():
    x, s = rand((2, 3, 16)), rand((2, 3, 16), seed=1)
    g, be, bi = rand((16,), seed=2), rand((16,), seed=3), rand((16,), seed=4)
    check("SkipLayerNormalization", {"x": x, "s": s, "g": g, "be": be, "bi": bi}, {"g", "be", "bi"},
          n_out=4, epsilon=1e-5)
    check("SkipLayerNormalization", {"x": x, "s": s, "g": g}, {"g"})


def test_embed_layernorm():
    ids = np.random.default_rng(0).integers(0, 20, (2, 5)).astype(np.int32)
    seg = np.random.default_rng(1).integers(0, 2, (2, 5)).astype(np.int32)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], np.int32)
    ins = {"ids": ids, "seg": seg, "we": rand((20, 8), seed=2), "pe": rand((16, 8), seed=3),
           "se": rand((2, 8), seed=4), "g": rand((8,), seed=5), "b": rand((8,), seed=6), "mask": mask}
    check("EmbedLayerNormalization", ins, {"we", "pe", "se", "g", "b"}, n_out=2,
          out_type=[TensorProto.FLOAT, TensorProto.INT32], epsilon=1e-5)
    ins.update(seg=None, se=None, mask=None)
    check("EmbedLayerNormalization", ins, {"we", "pe", "g", "b"}, n_out=3,
          out_type=[TensorProto.FLOAT, TensorProto.INT32, TensorProto.FLOAT])


@pytest.mark.parametrize("act,params", [("Relu", None), ("LeakyRelu", [0.2]), ("Clip", [-0.5, 0.5]),
                                        ("HardSigmoid", [0.3, 0.4]), ("Sigmoid", None), ("Tanh", None)])
def test_fused_conv(act, params):
    kw = {"activation": act, "kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    if params:
        kw["activation_params"] = params
    x, w, b = rand((1, 3, 6, 6)), rand((4, 3, 3, 3), seed=1), rand((4,), seed=2)
    check("FusedConv", {"x": x, "w": w, "b": b}, {"w", "b"}, **kw)
    check("FusedConv", {"x": x, "w": w, "b": b, "z": rand((1, 4, 6, 6), seed=3)}, {"w", "b"}, **kw)


def test_fused_gemm():
    a, b, c = rand((4, 6)), rand((5, 6), seed=1), rand((5,), seed=2)
    check("FusedGemm", {"a": a, "b": b, "c": c}, {"b", "c"}, transB=1, alpha=0.5, beta=2.0,
          activation="LeakyRelu", activation_alpha=0.1)
    check("FusedGemm", {"a": a, "b": b.T.copy()}, {"b"}, activation="Relu")


def test_nhwc_conv_is_conv_on_channels_last():
    """ORT's CPU provider has no NhwcConv kernel: compare with its Conv on transposed data."""
    x, w, b = rand((2, 7, 7, 4)), rand((6, 3, 3, 2), seed=1), rand((6,), seed=2)
    m, feed = ms_model("NhwcConv", {"x": x, "w": w, "b": b}, {"w", "b"}, group=2, strides=[2, 2],
                       pads=[1, 0, 1, 0])
    got = run_tf(m, feed)["y0"]
    conv = helper.make_node("Conv", ["x", "w", "b"], ["y"], group=2, strides=[2, 2], pads=[1, 0, 1, 0])
    g = helper.make_graph([conv], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(w.transpose(0, 3, 1, 2).copy(), "w"), numpy_helper.from_array(b, "b")])
    ref = run_ort(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]),
                  {"x": x.transpose(0, 3, 1, 2).copy()})["y"]
    np.testing.assert_allclose(got, ref.transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-5)


def _q(shape, dt, seed):
    lo, hi = (0, 255) if dt == np.uint8 else (-128, 127)
    return rand(shape, dt, seed, lo, hi)


@pytest.mark.parametrize("dt", [np.uint8, np.int8])
def test_qlinear_binary_and_unary(dt):
    a, b = _q((2, 3, 4), dt, 0), _q((3, 4), dt, 1)
    sa, sb, sc = np.float32(0.02), np.float32(0.03), np.float32(0.05)
    za, zb, zc = (np.array(v, dt) for v in ((7, 250, 128) if dt == np.uint8 else (3, -5, 1)))
    qt = _T[dt]
    for op in ("QLinearAdd", "QLinearMul"):
        check(op, {"a": a, "sa": sa, "za": za, "b": b, "sb": sb, "zb": zb, "sc": sc, "zc": zc},
              {"sa", "za", "sb", "zb", "sc", "zc"}, atol=1, rtol=0, out_type=qt)
    un = {"x": a, "sx": sa, "zx": za, "sy": np.float32(1 / 256), "zy": np.array(0 if dt == np.uint8 else -128, dt)}
    check("QLinearSigmoid", un, {"sx", "zx", "sy", "zy"}, atol=1, rtol=0, out_type=qt)
    un["sy"] = sc
    check("QLinearLeakyRelu", un, {"sx", "zx", "sy", "zy"}, atol=1, rtol=0, out_type=qt, alpha=0.2)
    x4 = _q((2, 3, 4, 5), dt, 2)
    for cl in (0, 1):
        check("QLinearGlobalAveragePool", {"x": x4, "sx": sa, "zx": za, "sy": sb, "zy": zb},
              {"sx", "zx", "sy", "zy"}, atol=1, rtol=0, out_type=qt, channels_last=cl)
    c = {"sy": sc, "zy": zc, "x1": a, "s1": sa, "z1": za, "x2": _q((2, 2, 4), dt, 3), "s2": sb, "z2": zb}
    check("QLinearConcat", c, {"sy", "zy", "s1", "z1", "s2", "z2"}, atol=1, rtol=0, out_type=qt, axis=1)


@pytest.mark.parametrize("dt", [np.uint8, np.int8])
def test_integer_matmuls_to_float(dt):
    a = rand((2, 5, 8), seed=0, lo=-3, hi=2)
    b = _q((8, 6), dt, 1)
    bs, bz = rand((6,), seed=2, lo=0.01, hi=0.05), _q((6,), dt, 3)
    bias = rand((6,), seed=4)
    check("DynamicQuantizeMatMul", {"a": a, "b": b, "bs": bs, "bz": bz, "bias": bias}, {"b", "bs", "bz", "bias"})
    check("DynamicQuantizeMatMul", {"a": a, "b": b, "bs": np.float32(0.03)}, {"b", "bs"})
    qa = _q((2, 5, 8), np.uint8, 5)
    check("MatMulIntegerToFloat", {"a": qa, "b": b, "as": np.float32(0.1), "bs": bs, "az": np.array(128, np.uint8),
                                   "bz": bz, "bias": bias}, {"b", "as", "bs", "az", "bz", "bias"})


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("dt", [np.int8, np.uint8])
def test_dynamic_quantize_lstm_bit_exact(direction, dt):
    """Same integer GEMMs, activation quantization and MLAS activations as ORT: equal to the bit.

    ORT quantizes h per chunk of ceil(batch / threads) rows: with threads >= batch, per row as we do."""
    d, t, bsz, i, h = (2 if direction == "bidirectional" else 1), 6, 3, 5, 4
    ins = {"x": rand((t, bsz, i), lo=-2, hi=2), "w": _q((d, i, 4 * h), dt, 1), "r": _q((d, h, 4 * h), dt, 2),
           "b": rand((d, 8 * h), seed=3), "sl": None, "h0": rand((d, bsz, h), seed=4), "c0": rand((d, bsz, h), seed=5),
           "p": rand((d, 3 * h), seed=6), "ws": rand((d, 4 * h), seed=7, lo=0.005, hi=0.02),
           "wz": np.full((d, 4 * h), 120 if dt == np.uint8 else 0, dt),  # ORT: one zp, shaped as the scale
           "rs": rand((d,), seed=9, lo=0.005, hi=0.02), "rz": np.full((d,), 128 if dt == np.uint8 else 0, dt)}
    got, ref = check("DynamicQuantizeLSTM", ins, {"w", "r", "b", "p", "ws", "wz", "rs", "rz"}, n_out=3,
                     hidden_size=h, direction=direction, rtol=0, atol=0, ort_threads=8)


def test_attention():
    b, s, hid, n = 2, 4, 8, 2
    x, w, bias = rand((b, s, hid)), rand((hid, 3 * hid), seed=1), rand((3 * hid,), seed=2)
    base = {"x": x, "w": w, "bias": bias}
    check("Attention", base, {"w", "bias"}, num_heads=n, atol=1e-5)
    check("Attention", base, {"w", "bias"}, num_heads=n, unidirectional=1, n_out=2)
    raw = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], np.int32)
    check("Attention", {**base, "m": raw}, {"w", "bias"}, num_heads=n)
    check("Attention", {**base, "m": np.array([2, 4], np.int32)}, {"w", "bias"}, num_heads=n)
    check("Attention", {**base, "m": np.array([3, 4, 1, 0], np.int32)}, {"w", "bias"}, num_heads=n)
    check("Attention", {**base, "m": None, "past": rand((2, b, n, 3, hid // n), seed=3)}, {"w", "bias"},
          num_heads=n, n_out=2)
    check("Attention", {"x": x, "w": rand((hid, 4 * hid), seed=4), "bias": rand((4 * hid,), seed=5)},
          {"w", "bias"}, num_heads=n, qkv_hidden_sizes=[8, 8, 16], scale=0.3)


def test_multi_head_attention():
    b, s, l, d, n = 2, 3, 5, 8, 2
    q, k, v = rand((b, s, d)), rand((b, l, d), seed=1), rand((b, l, d), seed=2)
    check("MultiHeadAttention", {"q": q, "k": k, "v": v}, num_heads=n)
    check("MultiHeadAttention", {"q": q, "k": k, "v": v, "bias": rand((3 * d,), seed=3),
                                 "kpm": np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], np.int32)}, {"bias"},
          num_heads=n)
    check("MultiHeadAttention", {"q": q, "k": k, "v": v, "bias": None, "kpm": None,
                                 "ab": rand((1, n, s, l), seed=4)}, num_heads=n, scale=0.5)


@pytest.mark.parametrize("bits,zp", [(4, None), (4, "packed"), (8, "packed"), (4, "float"), (2, None)])
def test_matmul_nbits(bits, zp):
    k, n, bs = 40, 6, 16
    blocks = (k + bs - 1) // bs
    rng = np.random.default_rng(0)
    b = rng.integers(0, 256, (n, blocks, bs * bits // 8)).astype(np.uint8)
    ins = {"a": rand((2, 3, k)), "b": b, "s": rand((n * blocks,), seed=1, lo=0.01, hi=0.1), "z": None}
    if zp == "packed":
        ins["z"] = rng.integers(0, 256, (n * ((blocks * bits + 7) // 8),)).astype(np.uint8)
    elif zp == "float":
        ins["z"] = rand((n * blocks,), seed=2, lo=0, hi=15)
    ins["g"], ins["bias"] = None, rand((n,), seed=3)
    check("MatMulNBits", ins, {"b", "s", "z", "bias"}, K=k, N=n, bits=bits, block_size=bs, atol=1e-4, rtol=1e-4)


def test_simplified_layernorms():
    x, s, g, b = rand((2, 3, 16)), rand((2, 3, 16), seed=1), rand((16,), seed=2), rand((16,), seed=3)
    check("SkipSimplifiedLayerNormalization", {"x": x, "s": s, "g": g, "b": b}, {"g", "b"}, n_out=4,
          epsilon=1e-5, atol=1e-5)
    m, feed = ms_model("SimplifiedLayerNormalization", {"x": x, "g": g}, {"g"}, epsilon=1e-5)
    m.graph.node[0].domain = ""
    assert_close(run_tf(m, feed), run_ort(m, feed), 1e-5, 1e-5)


def test_ms_quantize_dequantize():
    x = rand((2, 3, 4), lo=-3, hi=3)
    q, _ = check("QuantizeLinear", {"x": x, "s": rand((3,), seed=1, lo=0.01, hi=0.05), "z": _q((3,), np.int8, 2)},
                 {"s", "z"}, out_type=TensorProto.INT8, axis=1, atol=0, rtol=0)
    check("DequantizeLinear", {"q": q["y0"], "s": np.float32(0.03), "z": np.array(3, np.int8)}, {"s", "z"})


@pytest.mark.parametrize("ta,tb,alpha", [(0, 0, 1.0), (1, 0, 0.5), (0, 1, 2.0), (1, 1, 1.0)])
def test_fused_matmul(ta, tb, alpha):
    a = rand((2, 5, 4) if ta else (2, 4, 5))
    b = rand((3, 5) if tb else (5, 3), seed=1)
    check("FusedMatMul", {"a": a, "b": b}, {"b"}, transA=ta, transB=tb, alpha=alpha)


@pytest.mark.parametrize("dt", [np.uint8, np.int8])
def test_qlinear_avgpool_and_qgemm(dt):
    x = _q((1, 3, 6, 6), dt, 0)
    sx, sy = np.float32(0.05), np.float32(0.04)
    zx, zy = (np.array(v, dt) for v in ((120, 130) if dt == np.uint8 else (3, -2)))
    for cl in (0, 1):
        xi = x.transpose(0, 2, 3, 1).copy() if cl else x
        check("QLinearAveragePool", {"x": xi, "sx": sx, "zx": zx, "sy": sy, "zy": zy}, {"sx", "zx", "sy", "zy"},
              atol=1, rtol=0, out_type=_T[dt], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
              channels_last=cl)
    a, b = _q((4, 6), np.uint8, 1), _q((6, 5), dt, 2)
    c = np.random.default_rng(3).integers(-500, 500, (5,)).astype(np.int32)
    base = {"a": a, "sa": np.float32(0.02), "za": np.array(128, np.uint8), "b": b, "sb": np.float32(0.03),
            "zb": np.array(0, dt), "c": c}
    check("QGemm", base, {"sa", "za", "b", "sb", "zb", "c"}, alpha=0.5)
    check("QGemm", {**base, "sy": np.float32(0.1), "zy": np.array(100, np.uint8)},
          {"sa", "za", "b", "sb", "zb", "c", "sy", "zy"}, out_type=TensorProto.UINT8, atol=1, rtol=0)


@pytest.mark.parametrize("cl", [0, 1])
def test_ms_qlinear_conv(cl):
    x = _q((1, 3, 7, 7), np.uint8, 0)
    x = x.transpose(0, 2, 3, 1).copy() if cl else x
    w = _q((4, 3, 3, 3), np.int8, 1)
    ins = {"x": x, "sx": np.float32(0.02), "zx": np.array(120, np.uint8), "w": w, "sw": rand((4,), seed=2, lo=0.01,
           hi=0.03), "zw": np.zeros((4,), np.int8), "sy": np.float32(0.1), "zy": np.array(128, np.uint8),
           "b": np.random.default_rng(3).integers(-300, 300, (4,)).astype(np.int32)}
    check("QLinearConv", ins, {"sx", "zx", "w", "sw", "zw", "sy", "zy", "b"}, atol=1, rtol=0,
          out_type=TensorProto.UINT8, kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2], channels_last=cl)


@pytest.mark.parametrize("dt,opset,axis", [(np.uint8, 13, -1), (np.int8, 13, 1), (np.uint8, 12, 1)])
def test_qlinear_softmax(dt, opset, axis):
    x = _q((2, 3, 5), dt, 0)
    zy = np.array(0 if dt == np.uint8 else -128, dt)
    check("QLinearSoftmax", {"x": x, "sx": np.float32(0.05), "zx": np.array(3, dt), "sy": np.float32(1 / 256),
                             "zy": zy}, {"sx", "zx", "sy", "zy"}, atol=1, rtol=0, out_type=_T[dt], axis=axis,
          opset=opset)


@pytest.mark.parametrize("interleaved", [0, 1])
@pytest.mark.parametrize("layout", ["bsh", "bnsh"])
def test_ms_rotary_embedding(interleaved, layout):
    b, s, n, h = 2, 5, 2, 8
    x = rand((b, s, n * h)) if layout == "bsh" else rand((b, n, s, h))
    cos, sin = rand((16, h // 2), seed=1), rand((16, h // 2), seed=2)
    for pos in (np.array([3], np.int64), np.random.default_rng(3).integers(0, 16, (b, s)).astype(np.int64)):
        kw = {"num_heads": n} if layout == "bsh" and interleaved else {}
        check("RotaryEmbedding", {"x": x, "pos": pos, "cos": cos, "sin": sin}, {"cos", "sin"},
              interleaved=interleaved, **kw)


@pytest.mark.parametrize("with_mask", [False, True])
def test_qattention(with_mask):
    b, s, hid, n = 2, 4, 8, 2
    ins = {"x": _q((b, s, hid), np.uint8, 0), "w": _q((hid, 3 * hid), np.int8, 1), "bias": rand((3 * hid,), seed=2),
           "xs": np.float32(0.02), "ws": np.float32(0.01),
           "m": np.array([3, 4], np.int32) if with_mask else None, "xz": np.array(128, np.uint8),
           "wz": np.array(0, np.int8)}
    check("QAttention", ins, {"w", "bias", "xs", "ws", "wz"}, num_heads=n, atol=1e-5)
