"""Op coverage part B (2): spatial, signal, recurrent and data-dependent ops against ONNX Runtime
(onnx.reference for the opset-24+ ops ONNX Runtime lacks)."""
import numpy as np
import pytest
from onnx import TensorProto

from tensorforge.testing import rand

try:
    from .test_ops_b import check, const
except ImportError:
    from test_ops_b import check, const

F, I64 = TensorProto.FLOAT, TensorProto.INT64


@pytest.mark.parametrize("mode", ["linear", "nearest", "cubic"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align", [0, 1])
def test_grid_sample(mode, padding_mode, align):
    x, grid = rand((2, 3, 5, 7), seed=1), rand((2, 4, 6, 2), seed=2, lo=-1.2, hi=1.2)
    check("GridSample", [x, grid], {"mode": mode, "padding_mode": padding_mode, "align_corners": align},
          opset=20, rtol=1e-4, atol=1e-5)


def test_affine_grid_col2im_center_crop_pad():
    check("AffineGrid", [rand((2, 2, 3), seed=3), const([2, 3, 5, 7], np.int64)], {"align_corners": 0}, opset=20)
    check("Col2Im", [rand((2, 12, 15), seed=4), const([5, 6], np.int64), const([2, 2], np.int64)],
          {"strides": [1, 2], "pads": [1, 0, 0, 1]}, opset=18)
    check("CenterCropPad", [rand((3, 8, 5), seed=5), const([5, 9], np.int64)], {"axes": [1, 2]}, opset=18)


@pytest.mark.parametrize("op", ["HannWindow", "HammingWindow", "BlackmanWindow"])
@pytest.mark.parametrize("periodic", [0, 1])
def test_windows(op, periodic):
    check(op, [const(np.int64(11))], {"periodic": periodic}, opset=17, out_types=[F], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("attrs", [{}, {"onesided": 1}, {"inverse": 1}])
def test_dft_stft(attrs):
    x = rand((2, 9, 3, 2 if attrs.get("inverse") else 1), seed=6)
    check("DFT", [x, None, const(np.int64(1))], attrs, opset=20, rtol=1e-4, atol=1e-5)
    check("STFT", [rand((2, 40, 1), seed=7), const(np.int64(6)), rand((8,), seed=8)], opset=17,
          rtol=1e-4, atol=1e-5)


def test_roi_align_nms_unique_maxunpool():
    x = rand((2, 3, 11, 9), seed=9)
    rois = np.array([[1.2, 0.5, 6.7, 8.1], [0, 0, 8, 10.5], [3.3, 2.2, 4.1, 9.9]], np.float32)
    for mode in ("avg", "max"):
        for ratio in (2, 0):
            check("RoiAlign", [x, rois, np.array([0, 1, 1], np.int64)],
                  {"mode": mode, "output_height": 3, "output_width": 4, "sampling_ratio": ratio,
                   "spatial_scale": 0.8}, opset=16, rtol=1e-4)
    boxes = rand((2, 7, 4), seed=10, lo=0, hi=10)
    scores = rand((2, 3, 7), seed=11, lo=0.01, hi=1)
    check("NonMaxSuppression", [boxes, scores, const([3], np.int64), const([0.3], np.float32),
                                const([0.2], np.float32)], opset=11, out_types=[I64])
    v = np.array([3, 1, 3, 7, 1, 9, 2, 7], np.int64)
    for srt in (0, 1):
        check("Unique", [v], {"sorted": srt}, opset=11, out_types=[I64] * 4)
    check("Unique", [np.array([[1, 2], [3, 4], [1, 2], [0, 5]], np.int64)], {"axis": 0}, opset=11,
          out_types=[I64] * 4)
    idx = np.array([[[[0, 3], [12, 15]]]], np.int64)
    check("MaxUnpool", [rand((1, 1, 2, 2), seed=12), idx], {"kernel_shape": [2, 2], "strides": [2, 2]}, opset=11)


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_recurrent(op, direction):
    gates = {"RNN": 1, "GRU": 3, "LSTM": 4}[op]
    d, h, t, b, i = (2 if direction == "bidirectional" else 1), 5, 4, 3, 6
    ins = [rand((t, b, i), seed=13), rand((d, gates * h, i), seed=14), rand((d, gates * h, h), seed=15),
           rand((d, 2 * gates * h), seed=16), np.array([4, 2, 3], np.int32), rand((d, b, h), seed=17)]
    attrs = {"hidden_size": h, "direction": direction}
    if op == "LSTM":
        ins += [rand((d, b, h), seed=18), rand((d, 3 * h), seed=19)]
    if op == "GRU":
        attrs["linear_before_reset"] = 1
    check(op, ins, attrs, opset=14, outs=3 if op == "LSTM" else 2, rtol=1e-4, atol=1e-5)


def test_new_opset_ops_against_onnx_reference():
    q, k, v = rand((2, 5, 8), seed=20), rand((2, 5, 4), seed=21), rand((2, 5, 6), seed=22)
    decay, beta = rand((2, 5, 1), seed=23, lo=-0.5, hi=-0.1), rand((2, 5, 1), seed=24, lo=0.1, hi=0.9)
    check("LinearAttention", [q, k, v, None, decay, beta], {"q_num_heads": 2, "kv_num_heads": 1}, opset=27,
          outs=2, oracle="onnx", rtol=1e-4)
    x, w = rand((2, 3, 7), seed=25), rand((3, 1, 4), seed=26)
    check("CausalConvWithState", [x, w, rand((3,), seed=27), rand((2, 3, 3), seed=28)],
          {"activation": "silu"}, opset=27, outs=2, oracle="onnx", rtol=1e-4)
    check("TensorScatter", [rand((2, 3, 6, 4), seed=29), rand((2, 3, 2, 4), seed=30), np.array([1, 5], np.int64)],
          {"mode": "circular"}, opset=24, oracle="onnx")
    check("BitCast", [rand((3, 4), seed=31)], {"to": TensorProto.INT32}, opset=26, out_types=[TensorProto.INT32],
          oracle="onnx")


def test_deform_conv_tfidf_scatter():
    x, w = rand((2, 4, 6, 7), seed=40), rand((6, 2, 3, 2), seed=41)
    off = rand((2, 2 * 2 * 3 * 2, 5, 4), seed=42, lo=-1.5, hi=1.5)
    mask = rand((2, 2 * 3 * 2, 5, 4), seed=43, lo=0.1, hi=1.0)
    check("DeformConv", [x, w, off, rand((6,), seed=44), mask],
          {"group": 2, "offset_group": 2, "pads": [1, 0, 0, 1], "strides": [1, 2]}, opset=19, rtol=1e-4)
    tokens = np.array([[1, 1, 3, 3, 3, 7, 8, 6, 7, 5, 6, 8], [8, 8, 7, 1, 3, 5, 6, 7, 7, 6, 5, 2]], np.int32)
    for mode, skip, lo in (("TF", 0, 2), ("IDF", 3, 1), ("TFIDF", 5, 1)):
        check("TfIdfVectorizer", [tokens], {"mode": mode, "min_gram_length": lo, "max_gram_length": 2,
                                            "max_skip_count": skip, "ngram_counts": [0, 4],
                                            "ngram_indexes": [0, 1, 2, 3, 4, 5, 6],
                                            "pool_int64s": [2, 3, 5, 4, 5, 6, 7, 8, 6, 7],
                                            "weights": [0.5, 1, 1.5, 2, 2.5, 3, 3.5]},
              opset=9, out_types=[F])
    data, idx = rand((3, 5), seed=45), np.array([[1, 0, 4], [2, 3, 0]], np.int64)
    check("Scatter", [data, idx, rand((2, 3), seed=46)], {"axis": 1}, opset=10)


def _domain_model(op, domain, ins, outs, attrs, opset):
    from onnx import helper
    node = helper.make_node(op, [n for n, _ in ins], [n for n, _ in outs], domain=domain, **attrs)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT if a.dtype == np.float32
                                                                      else TensorProto.INT64, a.shape) for n, a in ins],
                          [helper.make_tensor_value_info(n, t, None) for n, t in outs])
    return helper.make_model(g, opset_imports=[helper.make_opsetid(domain, opset)], ir_version=8)


def test_ml_and_training_domains():
    from onnx.reference import ReferenceEvaluator
    from tensorforge.testing import assert_close, check_against_ort, run_tf
    x = rand((3, 6), seed=47)
    m = _domain_model("Binarizer", "ai.onnx.ml", [("x", x)], [("y", F)], {"threshold": 0.1}, 1)
    check_against_ort(m, {"x": x})
    idx = np.array([4, 0, 2], np.int64)
    m = _domain_model("ArrayFeatureExtractor", "ai.onnx.ml", [("x", x), ("i", idx)], [("y", F)], {}, 1)
    check_against_ort(m, {"x": x, "i": idx})
    r, t = np.array(0.1, np.float32), np.array(3, np.int64)
    xs, gs, vs, hs = (rand((4, 3), seed=s) for s in (48, 49, 50, 51))
    hs = np.abs(hs)
    for op, states, attrs in (("Adagrad", [("h", hs)], {"decay_factor": 0.1, "epsilon": 1e-5, "norm_coefficient": 1e-3}),
                              ("Momentum", [("v", vs)], {"alpha": 0.9, "beta": 0.1, "mode": "nesterov",
                                                         "norm_coefficient": 1e-2}),
                              ("Adam", [("v", vs), ("h", hs)], {"alpha": 0.9, "beta": 0.8, "epsilon": 1e-3,
                                                                "norm_coefficient": 1e-3})):
        ins = [("r", r), ("t", t), ("x", xs), ("g", gs)] + states
        outs = [("x2", F)] + [(n + "2", F) for n, _ in states]
        m = _domain_model(op, "ai.onnx.preview.training", ins, outs, attrs, 1)
        feed = dict(ins)
        ref = dict(zip([o for o, _ in outs], ReferenceEvaluator(m).run(None, feed)))
        assert_close(run_tf(m, feed), ref, rtol=1e-5, atol=1e-6)


def test_flex_attention_against_onnx_reference():
    from onnx import helper
    from onnx.reference import ReferenceEvaluator
    from tensorforge.testing import assert_close, run_tf
    q, k, v = rand((2, 4, 3, 8), seed=52), rand((2, 2, 5, 8), seed=53), rand((2, 2, 5, 6), seed=54)
    node = helper.make_node("FlexAttention", ["q", "k", "v"], ["y"], domain="ai.onnx.preview", scale=0.3)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, F, a.shape) for n, a in
                                        (("q", q), ("k", k), ("v", v))], [helper.make_tensor_value_info("y", F, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 26), helper.make_opsetid("ai.onnx.preview", 1)],
                          ir_version=10)
    feed = {"q": q, "k": k, "v": v}
    assert_close(run_tf(m, feed), {"y": ReferenceEvaluator(m).run(None, feed)[0]}, rtol=1e-4)
