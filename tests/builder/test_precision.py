"""Precision assignment: policy table, reduced-precision regions and casts, constraints."""
import logging

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import tensorforge as tf
from tensorforge import frontend
from tensorforge.builder import precision
from tensorforge.builder.precision import POLICY, assign_precision, policy_of
from tensorforge.errors import TensorforgeError
from tensorforge.ops import registry
from tensorforge.testing import make_model, rand, run_ort

from .models import masked_scores, mlp_softmax, postprocessed, twin_convs


def _assign(model, **kw):
    return assign_precision(frontend.load(model), tf.BuilderConfig(**kw))


def _types(g):
    """{node name: output-0 dtype} and the list of Cast nodes."""
    return {n.name: n.outputs[0].dtype for n in g.nodes}, [n for n in g.nodes if n.op == "Cast"]


def _rel_err(got, ref):
    return float(np.abs(got.astype(np.float64) - ref).max() / max(np.abs(ref).max(), 1e-6))


def _run(model, feed, **kw):
    eng = tf.Builder(tf.BuilderConfig(device="cpu", opt_level=0, **kw)).build(model)
    return {k: v.float().numpy() if v.is_floating_point() else v.numpy()
            for k, v in eng.create_execution_context().infer(feed).items()}, eng


def test_policy_table_is_data_over_known_ops():
    assert set(POLICY.values()) <= {"low", "acc32", "fp32", "follow", "any"}
    known = set(registry.supported_ops())
    assert {"Softmax", "LayerNormalization", "ReduceSum", "Exp", "Conv", "MatMul"} <= known
    assert POLICY["ReduceSum"] == POLICY["Exp"] == POLICY["Pow"] == "fp32"
    assert POLICY["Softmax"] == POLICY["LayerNormalization"] == POLICY["ReduceMean"] == "acc32"
    node = type("N", (), {"op": "fused.Pointwise", "attrs": {"expr": {"nodes": [
        {"op": "input", "i": 0}, {"op": "Exp", "args": [0], "attrs": {}}], "out": 1}}})()
    assert policy_of(node) == "fp32"
    node.attrs["expr"]["nodes"][1]["op"] = "Relu"
    assert policy_of(node) == "low"
    red = type("N", (), {"op": "fused.Reduce", "attrs": {"kind": "sum"}})()
    assert policy_of(red) == "fp32"
    red.attrs["kind"] = "mean"
    assert policy_of(red) == "acc32"


def test_fp32_default_changes_nothing():
    g = frontend.load(mlp_softmax())
    before = [(n.op, [v.dtype for v in n.outputs]) for n in g.nodes]
    g = assign_precision(g, tf.BuilderConfig())
    assert [(n.op, [v.dtype for v in n.outputs]) for n in g.nodes] == before


@pytest.mark.parametrize("low", ["bf16", "fp16"])
def test_regions_casts_and_io_types(low):
    dt = {"bf16": "bfloat16", "fp16": "float16"}[low]
    g = _assign(mlp_softmax(), **{low: True})
    types, casts = _types(g)
    assert types["fc1"] == types["add1"] == types["relu1"] == types["fc2"] == dt
    assert types["exp1"] == "float32"  # overflow-prone: FP32
    assert types["softmax1"] == types["fc3"] == dt  # softmax: FP32 accumulation inside the kernel
    assert g.inputs[0].dtype == "float32" and g.outputs[0].dtype == "float32"
    # casts: input -> low, fc2 -> fp32 (for exp), exp -> low (softmax), fc3 -> fp32 (graph output)
    assert len(casts) == 4
    w = [v for n in g.nodes if n.op == "MatMul" for v in n.inputs if v.const is not None]
    assert len(w) == 3 and w[0] is w[1] is w[2] and w[0].dtype == dt  # shared weight converted once


def test_output_postprocessing_after_the_last_gemm_stays_fp32():
    types, casts = _types(_assign(postprocessed(), fp16=True))
    assert types == {"Cast x -> fp16": "float16", "fc": "float16", "Cast m -> fp32": "float32",
                     "scale": "float32", "shift": "float32"}


def test_bf16_build_matches_fp32_reference():
    m = mlp_softmax()
    feed = {"x": rand((5, 16), seed=2)}
    ref = run_ort(m, feed)["y"]
    got, eng = _run(m, feed, bf16=True)
    assert _rel_err(got["y"], ref) < 2e-2
    assert eng.outputs[0].dtype == "float32"
    assert {lay.precision for lay in eng.plan.layers} == {"bfloat16", "float32"}


def test_conv_net_bf16_matches_ort_and_records_layer_precision():
    m = twin_convs()
    feed = {"x": rand((2, 4, 12, 12), seed=4)}
    ref = run_ort(m, feed)["y"]
    got, eng = _run(m, feed, bf16=True)
    assert _rel_err(got["y"], ref) < 3e-2
    conv = [lay for lay in eng.plan.layers if "Conv" in lay.type]
    assert conv and all(lay.precision == "bfloat16" for lay in conv)
    assert all(eng.weights[lay.inputs[1]].dtype == torch.bfloat16 for lay in conv)


def test_overflowing_and_underflowing_constants_keep_fp32_and_mask_cast_reads_ints():
    g = _assign(masked_scores(), fp16=True)
    types, casts = _types(g)
    assert types["mul_mask"] == "float32"  # -3.4e38 overflows fp16
    assert types["add_eps"] == "float32"  # 1e-12 underflows fp16
    assert types["sub_mask"] == "float16" and types["scores"] == "float16"
    sub = next(n for n in g.nodes if n.name == "sub_mask")
    src = sub.inputs[1].producer
    assert src.op == "Cast" and src.inputs[0].dtype == "int64"  # int -> fp16 directly, not via fp32
    with_bf16 = _types(_assign(masked_scores(), bf16=True))[0]
    assert with_bf16["add_eps"] == "bfloat16"  # bf16 has (almost) the fp32 range
    assert with_bf16["mul_mask"] == "float32"  # but not float32's max
    feed = {"x": rand((2, 8), seed=1), "mask": np.array([[1] * 6 + [0] * 2, [1] * 8], np.int64)}
    got, _ = _run(masked_scores(), feed, fp16=True)
    assert _rel_err(got["y"], run_ort(masked_scores(), feed)["y"]) < 1e-2


def test_strongly_typed_follows_onnx_types(caplog):
    with caplog.at_level(logging.WARNING, logger="tensorforge"):
        g = _assign(mlp_softmax(), fp16=True, strongly_typed=True)
    assert all(v.dtype == "float32" for n in g.nodes for v in n.outputs)
    assert "strongly typed" in caplog.text


def test_fp16_model_keeps_its_types():
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 4)).astype(np.float16), "W")
    m = make_model([helper.make_node("MatMul", ["x", "W"], ["m"], name="mm"),
                    helper.make_node("Exp", ["m"], ["y"], name="exp")],
                   [("x", TensorProto.FLOAT16, [2, 4])], [("y", TensorProto.FLOAT16, None)], [w])
    types, casts = _types(_assign(m, bf16=True))
    assert types == {"mm": "float16", "exp": "float16"} and not casts


@pytest.mark.parametrize("mode", ["obey", "prefer"])
def test_layer_precisions_honoured(mode):
    g = _assign(mlp_softmax(), bf16=True, precision_constraints=mode,
                layer_precisions={"fc*": "fp32", "fc2": "float16", "exp1": "bf16"})
    types, _ = _types(g)
    assert types["fc1"] == "float32"  # wildcard
    assert types["fc2"] == "float16"  # later entries win
    assert types["exp1"] == "bfloat16"  # explicit request beats the fp32 policy
    assert types["relu1"] == "bfloat16"


def test_layer_precision_without_reduced_flag_and_output_types():
    g = _assign(mlp_softmax(), precision_constraints="obey", layer_precisions={"fc1": "fp16"},
                layer_output_types={"fc1": ["fp32"]})
    types, casts = _types(g)
    fc1 = next(n for n in g.nodes if n.name == "fc1")
    assert fc1.outputs[0].dtype == "float16"
    out_cast = fc1.outputs[0].users[0]
    assert out_cast.op == "Cast" and out_cast.outputs[0].dtype == "float32"
    assert types["add1"] == "float32" and len(casts) == 2
    feed = {"x": rand((3, 16), seed=3)}
    got, _ = _run(mlp_softmax(), feed, precision_constraints="obey", layer_precisions={"fc1": "fp16"})
    assert _rel_err(got["y"], run_ort(mlp_softmax(), feed)["y"]) < 1e-2


def test_constraints_none_ignored_and_obey_impossible_errors(caplog):
    with caplog.at_level(logging.WARNING, logger="tensorforge"):
        g = _assign(mlp_softmax(), layer_precisions={"fc1": "fp16"})
    assert _types(g)[0]["fc1"] == "float32" and "ignored" in caplog.text
    with pytest.raises(TensorforgeError, match="cannot run in float16"):
        _assign(masked_scores(), precision_constraints="obey", layer_precisions={"cast_mask": "fp16"})
    g = _assign(masked_scores(), precision_constraints="prefer", layer_precisions={"cast_mask": "fp16"})
    assert _types(g)[0]["cast_mask"] == "float32"


def test_bad_pattern_rejected():
    with pytest.raises(TensorforgeError, match="more than one"):
        _assign(mlp_softmax(), precision_constraints="obey", layer_precisions={"a*b*": "fp16"})
    _ = precision
