"""Attention ops against ONNX Runtime (onnx.reference for LinearAttention, FlexAttention):
Attention, RotaryEmbedding, LinearAttention, FlexAttention."""
import numpy as np
import pytest
from onnx import helper
from onnx.reference import ReferenceEvaluator

from tensorforge.testing import assert_close, rand, run_tf

try:
    from .node_models import F, check_node
except ImportError:
    from node_models import F, check_node


@pytest.mark.parametrize("variant", ["plain", "causal_gqa", "mask_softcap", "past", "rank3"])
def test_attention(variant):
    b, hq, hkv, sq, skv, d = 2, 4, 4, 3, 5, 8
    attrs, extra, outs = {}, [], 1
    if variant == "causal_gqa":
        hkv, attrs = 2, {"is_causal": 1}
    q = rand((b, hq, sq, d), seed=21)
    k, v = rand((b, hkv, skv, d), seed=22), rand((b, hkv, skv, d), seed=23)
    if variant == "mask_softcap":
        attrs = {"softcap": 2.0, "scale": 0.3}
        extra = [rand((sq, skv), seed=24)]
    if variant == "past":
        extra = [None, rand((b, hkv, 2, d), seed=25), rand((b, hkv, 2, d), seed=26)]
        outs, attrs = 3, {"is_causal": 1}
    if variant == "rank3":
        q, k, v = (t.transpose(0, 2, 1, 3).reshape(t.shape[0], t.shape[2], -1) for t in (q, k, v))
        attrs = {"q_num_heads": hq, "kv_num_heads": hkv}
    check_node("Attention", [q, k, v] + extra, attrs, opset=23, outs=outs, rtol=1e-4, atol=1e-5)


def test_rotary_embedding():
    x = rand((2, 3, 5, 8), seed=27)
    cos, sin = rand((6, 4), seed=28), rand((6, 4), seed=29)
    pos = np.array([[0, 2, 4, 5, 1], [1, 1, 3, 0, 2]], np.int64)
    for inter in (0, 1):
        check_node("RotaryEmbedding", [x, cos, sin, pos], {"interleaved": inter}, opset=23)


def test_linear_attention():
    q, k, v = rand((2, 5, 8), seed=20), rand((2, 5, 4), seed=21), rand((2, 5, 6), seed=22)
    decay, beta = rand((2, 5, 1), seed=23, lo=-0.5, hi=-0.1), rand((2, 5, 1), seed=24, lo=0.1, hi=0.9)
    check_node("LinearAttention", [q, k, v, None, decay, beta], {"q_num_heads": 2, "kv_num_heads": 1}, opset=27,
               outs=2, oracle="onnx", rtol=1e-4)


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
