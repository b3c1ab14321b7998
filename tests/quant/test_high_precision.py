"""quantize --high-precision-dtype (ModelOpt's default FP16): the written model's types, ONNX Runtime runs it,
placement unchanged; the build of an FP16 Q/DQ model runs its non-quantized layers in FP16 and matches ORT."""
import collections
import functools
import logging

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from tensorforge import Builder, BuilderConfig, zoo
from tensorforge.quant import quantize
from tensorforge.testing import run_ort

BERT = "bert_base_small"


@functools.lru_cache(maxsize=None)
def _bert(mode, hp):
    feeds = [zoo.random_inputs(BERT, 2, seed=i) for i in range(2)]
    return quantize(zoo.get_model(BERT), mode, feeds, "max", high_precision=hp)


def _cos(a, b):
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def _types(m):
    inf = onnx.shape_inference.infer_shapes(m)
    return {v.name: v.type.tensor_type.elem_type for v in list(inf.graph.value_info) + list(inf.graph.output)}


@pytest.mark.parametrize("mode", ["int8", "fp8"])
def test_fp16_model_types_and_ort(mode):
    m, q, q32 = zoo.get_model(BERT), _bert(mode, "fp16"), _bert(mode, "fp32")
    assert [(i.name, i.type.tensor_type.elem_type) for i in q.graph.input] == \
        [(i.name, i.type.tensor_type.elem_type) for i in m.graph.input]  # I/O types kept
    assert [(o.name, o.type.tensor_type.elem_type) for o in q.graph.output] == \
        [(o.name, o.type.tensor_type.elem_type) for o in m.graph.output]
    assert not [i.name for i in q.graph.initializer if i.data_type == TensorProto.FLOAT]
    types = _types(q)
    dqs = [n for n in q.graph.node if n.op_type == "DequantizeLinear"]
    assert dqs and all(types[n.output[0]] == TensorProto.FLOAT16 for n in dqs)  # DQ output follows the scale
    f32 = [k for k, t in types.items() if t == TensorProto.FLOAT]
    assert sorted(f32) == sorted(o.name for o in q.graph.output)  # float32 only at the outputs' Casts
    new_casts = sum(n.op_type == "Cast" for n in q.graph.node) - sum(n.op_type == "Cast" for n in m.graph.node)
    assert new_casts == len(q.graph.output)  # BERT's float inputs are int64 ids / mask: no input Cast
    f = zoo.random_inputs(BERT, 2, seed=9)
    ref, got, got32 = run_ort(m, f), run_ort(q, f, basic=True), run_ort(q32, f, basic=True)
    for k in ref:
        assert got[k].dtype == np.float32
        assert _cos(got[k], ref[k]) > 0.995 and _cos(got[k], ref[k]) > _cos(got32[k], ref[k]) - 2e-3, k


def test_placement_unchanged_apart_from_types():
    q, q32 = _bert("int8", "fp16"), _bert("int8", "fp32")
    qdq = ("QuantizeLinear", "DequantizeLinear")
    assert [(n.name, list(n.input)) for n in q.graph.node if n.op_type in qdq] == \
        [(n.name, list(n.input)) for n in q32.graph.node if n.op_type in qdq]
    def ops(m):  # FP16 Q/DQ needs opset 19: ReduceMean's axes become Constant inputs, nothing else changes
        return collections.Counter(n.op_type for n in m.graph.node if n.op_type not in ("Cast", "Constant"))
    assert ops(q) == ops(q32) and q.opset_import[0].version == 19
    s16 = {i.name: onnx.numpy_helper.to_array(i) for i in q.graph.initializer if i.name.endswith("_scale")}
    s32 = {i.name: onnx.numpy_helper.to_array(i) for i in q32.graph.initializer if i.name.endswith("_scale")}
    assert s16.keys() == s32.keys() and all(s16[k].dtype == np.float16 for k in s16)
    assert all(np.allclose(s16[k].astype(np.float32), s32[k], rtol=1e-3, atol=6e-8) for k in s16)


def test_image_model_gets_an_input_cast_and_bf16_types():
    m = zoo.get_model("resnet50_small")
    feeds = [zoo.random_inputs("resnet50_small", 1, seed=0)]
    q = quantize(m, "int8", feeds, "max")
    casts = [n for n in q.graph.node if n.op_type == "Cast"]
    assert [n.input[0] for n in casts if n.input[0] == "input"] and q.graph.input[0].type.tensor_type.elem_type == 1
    f = zoo.random_inputs("resnet50_small", 2, seed=3)
    assert _cos(run_ort(q, f, basic=True)["output"], run_ort(m, f)["output"]) > 0.98
    b = quantize(m, "int8", feeds, "max", high_precision="bf16")
    assert {i.data_type for i in b.graph.initializer} <= {TensorProto.BFLOAT16, TensorProto.INT8, TensorProto.INT64}
    eng = Builder(BuilderConfig(device="cpu", opt_level=0)).build(b)
    precs = {lay.precision for lay in eng.plan.layers if lay.type == "fused.QConv"}
    assert "bfloat16" in precs and precs <= {"bfloat16", "int8"}  # int8: a requantized output
    y = eng.create_execution_context().infer(f)["output"].float().numpy()
    assert _cos(y, run_ort(m, f)["output"]) > 0.95


def _plan(model, **kw):
    return Builder(BuilderConfig(device="cpu", opt_level=0, **kw)).build(model)


def _layer_types(eng):
    return collections.Counter((lay.type, lay.precision) for lay in eng.plan.layers)


@pytest.mark.parametrize("mode", ["int8", "fp8"])
def test_fp16_qdq_bert_builds_fp16_layers_and_matches_ort(mode):
    q = _bert(mode, "fp16")
    eng = _plan(q)
    c = _layer_types(eng)
    qtype = "int8" if mode == "int8" else "float8e4m3fn"
    # the quantized layers write FP16 (the graph's DQ type), or requantize into the next layer's type
    assert c[("fused.QMatMul", "float16")] >= 4 and {p for t, p in c if t == "fused.QMatMul"} <= {"float16", qtype}
    assert {p for (t, p) in c if t in ("fused.Attention", "fused.LayerNorm")} <= {"float16", qtype}
    assert not [t for t, p in c if t in ("QuantizeLinear", "DequantizeLinear")]  # FP16 Q/DQ lowered and fused
    # Q, K and V as one quantized GEMM per block (merge_gemm), then out-projection, FFN up, FFN down
    assert sum(v for (t, _), v in c.items() if t == "fused.QMatMul") == 4 * 2, c
    # the head merge after attention stays in the attention layer, and the Q after it is the attention's
    # store (passes/quant/finish.quant_attention_out): no pointwise layer between attention and out-projection
    assert not [t for t, p in c if t in ("Transpose", "Reshape")], c
    att = [lay for lay in eng.plan.layers if lay.type == "fused.Attention"]
    assert att and all(lay.attrs.get("out_q", [None] * 3)[2] == qtype for lay in att), [lay.attrs for lay in att]
    assert all(eng.plan.tensors[lay.outputs[0]].dtype == qtype for lay in att)
    f32 = [(t, p) for (t, p) in c if p == "float32"]
    assert all(t in ("Cast", "fused.QGemm") for t, _ in f32), f32  # only the outputs' (tail's) FP32
    f = zoo.random_inputs(BERT, 2, seed=9)
    ref = run_ort(q, f, basic=True)  # the fake-quant reference of the same model
    got = eng.create_execution_context().infer(f)
    for k, r in ref.items():
        assert _cos(got[k].float().numpy(), r) > 0.999, k


def test_fp32_qdq_model_follows_fp16_flag(caplog):
    q = _bert("fp8", "fp32")
    strict = _layer_types(_plan(q))
    assert strict[("fused.QMatMul", "float32")] >= 4 and not strict[("fused.QMatMul", "float16")]
    with caplog.at_level(logging.INFO, logger="tensorforge"):
        eng = _plan(q, fp16=True)
    assert "non-Q/DQ part follows --fp16" in caplog.text
    c = _layer_types(eng)
    assert c[("fused.QMatMul", "float16")] >= 4 and c[("fused.LayerNorm", "float16")] >= 1
    assert {t for t, p in c if p == "float32"} == {"Cast"}  # the outputs' Casts (norms with a Q output too)
    f = zoo.random_inputs(BERT, 2, seed=9)
    ref = run_ort(q, f, basic=True)
    got = eng.create_execution_context().infer(f)
    for k, r in ref.items():
        assert _cos(got[k].float().numpy(), r) > 0.999, k


def test_converter_keeps_blocked_ops_resize_scales_and_passthrough_outputs():
    from onnx import helper, numpy_helper

    from tensorforge.quant.highprec import to_high_precision
    from tensorforge.testing import make_model
    m = make_model([helper.make_node("Celu", ["x"], ["c"], name="celu"), helper.make_node("Relu", ["c"], ["r"]),
                    helper.make_node("Resize", ["r", "", "sc"], ["y"], mode="nearest")],
                   [("x", TensorProto.FLOAT, [1, 1, 2, 2])],
                   [("y", TensorProto.FLOAT, [1, 1, 4, 4]), ("x", TensorProto.FLOAT, [1, 1, 2, 2])],
                   [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "sc")], opset=19)
    h = to_high_precision(m)
    onnx.checker.check_model(h, full_check=True)
    types = _types(h)
    assert types["c"] == TensorProto.FLOAT16 and types["c_fp32"] == TensorProto.FLOAT  # Celu in FP32
    assert {i.name: i.data_type for i in h.graph.initializer}["sc"] == TensorProto.FLOAT  # Resize scales stay
    x = np.random.default_rng(0).standard_normal((1, 1, 2, 2)).astype(np.float32)
    a, b = run_ort(m, {"x": x}), run_ort(h, {"x": x}, basic=True)
    assert b["x"].dtype == np.float32 and np.array_equal(a["x"], b["x"])
    np.testing.assert_allclose(b["y"], a["y"], rtol=2e-3, atol=2e-3)


def test_input_cast_and_quantize_fuse_into_one_layer():
    from tensorforge.testing import rand
    from tests.kernels.test_triton_qconv import resnet_block
    q = quantize(resnet_block(), "int8", [{"x": rand((2, 32, 7, 9), seed=0)}], "max")  # 32 channels: quantized
    first = _plan(q).plan.layers[0]
    assert first.type == "fused.Pointwise" and first.precision == "int8"
    assert {"x_cast_to_fp16", "x_QuantizeLinear"} <= set(first.origin), first.origin


def test_three_channel_stem_stays_fp16_with_its_output_q_fused():
    """ResNet's stem (3 input channels) is not quantized; the Q of the next convs' input moves back
    through MaxPool into the stem's epilogue, so MaxPool runs on int8."""
    q = quantize(zoo.get_model("resnet50_small"), "int8", [zoo.random_inputs("resnet50_small", 1, seed=0)], "max")
    layers = _plan(q).plan.layers
    stem, pool = layers[1], layers[2]
    assert stem.type == "fused.ConvAct" and "conv1" in stem.origin and "maxpool_QuantizeLinear" in stem.origin
    assert stem.precision == "int8" and pool.type == "MaxPool" and pool.precision == "int8"
