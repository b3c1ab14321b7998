"""ONNX backend node tests through tensorforge: a quick curated subset always; the full run (all
node cases, a minimum pass count) only with TF_CONFORMANCE_FULL=1."""
from __future__ import annotations

import os

import pytest

from . import run_node_tests as conf

# onnx.backend.test.case.node modules: core ops plus the part-B ops (resize, quant, attention, ...);
# lppool is left out only because generating its cases takes ~5 s
CURATED = ["add", "relu", "conv", "gemm", "matmul", "softmax", "reshape", "expand", "concat",
           "slice", "transpose", "resize", "upsample", "attention", "rotaryembedding",
           "quantizelinear", "dequantizelinear", "qlinearmatmul", "qlinearconv", "matmulinteger",
           "convinteger", "bitshift", "bitwiseand", "bitwisenot", "det", "lrn",
           "rmsnormalization", "layernormalization", "batch_normalization", "maxpool",
           "averagepool", "negativeloglikelihoodloss", "mod", "cast", "dropout", "gridsample",
           "col2im", "dft", "stft", "roialign", "nonmaxsuppression", "unique", "lstm", "gru", "rnn",
           "linear_attention", "causal_conv_with_state", "bitcast", "hannwindow", "castlike", "topk",
           "reducemax", "reducemin", "spacetodepth", "lpnormalization", "image_decoder",
           "if_", "loop", "scan", "sequence_map", "sequenceinsert", "splittosequence", "optionalgetelement",
           "optionalhaselement"]
# failures that are real unsupported features or random ops, never bugs
ALLOWED = {"unsupported_op", "unsupported_feature", "random_op"}
# wrong by a few fp16 ulps (rtol 1e-3) through the fused MatMul/Softmax path, not a part-B op
# DFT: the expected outputs carry numpy's float32 FFT rounding noise (2e-7 where the exact value
# is 0), above the runner's atol of 1e-7
# loop16_seq_none: onnx's runner cannot compare a sequence of 0-d arrays (len() of a 0-d array)
KNOWN = {"test_attention_4d_causal_fp16_expanded", "test_dft_inverse", "test_dft_inverse_opset19",
         "test_loop16_seq_none"}
MIN_FULL_PASS = 1835  # of 1884 (697 before part B; 1670 before contrib types/ops, control flow, sequences)


@pytest.fixture(scope="module")
def curated():
    return conf.load_module_cases(CURATED)


@pytest.mark.parametrize("module", CURATED)
def test_curated(curated, module):
    """Every case of the module passes or fails only as a known unsupported feature / random op."""
    assert curated[module], f"no cases from module {module}"
    bad = []
    for c in curated[module]:
        res = conf.run_case(c)
        if res is not None and res["kind"] not in ALLOWED and c.name not in KNOWN:
            bad.append(f"{c.name}: {res['kind']}: {res['error'][:200]}")
    assert not bad, "\n".join(bad)


# ONNX's model suites, old opsets upgraded with onnx.version_converter (run_model_tests.py): passes
# per suite; `simple` fails only on string tensors (6), sequences (8) and training's Gradient (2)
MIN_MODEL_PASS = {"simple": 7, "pytorch-converted": 82, "pytorch-operator": 35}


def test_model_suites():
    """simple / pytorch-converted / pytorch-operator: at least MIN_MODEL_PASS each, no runtime bugs."""
    from . import run_model_tests as models
    cases, bad = models.load_cases()
    assert not bad, bad
    passed, bugs = {}, []
    for c in cases:
        res = conf.run_case(c)
        passed[c.kind] = passed.get(c.kind, 0) + (res is None)
        if res is not None and res["kind"] not in ALLOWED:
            bugs.append(f"{c.name}: {res['kind']}: {res['error'][:200]}")
    assert not bugs, "\n".join(bugs)
    for kind, floor in MIN_MODEL_PASS.items():
        assert passed.get(kind, 0) >= floor, (kind, passed)


def test_classify():
    """Failure kinds: unsupported op, unsupported feature, wrong result, runtime bug."""
    from tensorforge.errors import ShapeError, TensorforgeError, UnsupportedOpError
    assert conf.classify(UnsupportedOpError("unsupported op 'X'")) == "unsupported_op"
    assert conf.classify(ShapeError("Expand 'e': target shape is data-dependent (not supported)")) \
        == "unsupported_feature"
    assert conf.classify(AssertionError("Not equal")) == "wrong_result"
    assert conf.classify(TensorforgeError("layer 'a' failed at these shapes: x not supported")) == "exception"
    assert conf.classify(KeyError("k")) == "exception"


@pytest.mark.skipif(os.environ.get("TF_CONFORMANCE_FULL") != "1", reason="set TF_CONFORMANCE_FULL=1")
def test_full_run():
    """All node cases in worker processes; at least MIN_FULL_PASS pass, no runner crashes."""
    cases = conf.load_cases()
    failures = conf.run_all(cases, jobs=os.cpu_count() or 1, timeout=120)
    print(conf.summarize(len(cases), failures))
    assert len(cases) - len(failures) >= MIN_FULL_PASS
    assert not [f for f in failures if f["kind"] == "crash"]


def test_backend_inputs_outputs_and_shape_inputs():
    """Initializers listed as inputs are not fed; shape inputs work; outputs come in graph order."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from tensorforge.backend import TensorforgeBackend as B
    w = numpy_helper.from_array(np.full((2, 3), 0.5, np.float32), "w")
    nodes = [helper.make_node("Add", ["x", "w"], ["s"]), helper.make_node("Reshape", ["s", "shape"], ["r"]),
             helper.make_node("Neg", ["s"], ["n"])]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
              helper.make_tensor_value_info("w", TensorProto.FLOAT, [2, 3]),
              helper.make_tensor_value_info("shape", TensorProto.INT64, [2])]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("n", "r")]
    model = helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, [w]),
                              opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    rep = B.prepare(model, "CPU")
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    for shape in ([3, 2], [1, 6]):
        n, r = rep.run([x, np.array(shape, np.int64)])
        np.testing.assert_allclose(n, -(x + 0.5))
        np.testing.assert_allclose(r, (x + 0.5).reshape(shape))
    assert B.supports_device("CPU") and not B.supports_device("NPU")
    (y,) = B.run_node(helper.make_node("Relu", ["a"], ["b"]), [np.float32([-1, 2])])
    np.testing.assert_array_equal(y, [0, 2])


def test_backend_bakes_data_dependent_parameters():
    """Axes fed as a graph input: the engine is specialized per value (TensorRT shape-tensor style)."""
    import numpy as np
    from onnx import TensorProto, helper

    from tensorforge.backend import TensorforgeBackend as B
    vi = helper.make_tensor_value_info
    node = helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=0)
    model = helper.make_model(helper.make_graph([node], "g", [vi("x", TensorProto.FLOAT, [2, 3]),
                                                              vi("axes", TensorProto.INT64, [1])],
                                                [vi("y", TensorProto.FLOAT, None)]),
                              opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    rep = B.prepare(model)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    for ax in (0, 1, 0):
        np.testing.assert_allclose(rep.run([x, np.array([ax], np.int64)])[0], x.sum(ax))
    assert rep.baked == ["axes"] and len(rep._engines) == 2
