"""Legality of the aten tactic variants for fused layers (enumeration only; runs on CPU)."""
import pytest
import torch

from tensorforge import kernels
from tensorforge.kernels import LayerShapes
from tensorforge.kernels.aten import attention, conv, gemm
from tensorforge.runtime.plan import LayerSpec

CUDA, CPU = torch.device("cuda"), torch.device("cpu")
RELU = {"nodes": [{"op": "input", "i": 0}, {"op": "Relu", "args": [0], "attrs": {}}], "out": 1}
ADD_RELU = {"nodes": [{"op": "input", "i": 0}, {"op": "input", "i": 1}, {"op": "Add", "args": [1, 0], "attrs": {}},
                      {"op": "Relu", "args": [2], "attrs": {}}], "out": 3}
GELU_TANH = {"nodes": [{"op": "input", "i": 0}, {"op": "Gelu", "args": [0], "attrs": {"approximate": "tanh"}}],
             "out": 1}
GELU_ERF = {"nodes": [{"op": "input", "i": 0}, {"op": "Gelu", "args": [0], "attrs": {}}], "out": 1}


def _t(dtype, shape, kind="activation"):
    return {"dtype": dtype, "shape": list(shape), "kind": kind}


def _layer(type_, inputs, outputs, **attrs):
    """(layer, its shapes)."""
    lay = LayerSpec("l", type_, [f"i{k}" for k in range(len(inputs))], ["o"], attrs=attrs)
    return lay, LayerShapes.of(inputs, outputs)


def _names(case, dev=CUDA):
    return [(c["name"], c["params"].get("weight_layout") or c["params"].get("act") or c["params"].get("backend"))
            for c in kernels.candidates(*case, dev) if c["source"] == "aten"]


def _conv_act(epilogue, residual_shape=(2, 8, 9, 9), pads=(1, 1, 1, 1)):
    ins = [_t("float16", (2, 4, 9, 9)), _t("float16", (8, 4, 3, 3), "weight"), _t("float16", (8,), "weight")]
    if residual_shape:
        ins.append(_t("float16", residual_shape))
    return _layer("fused.ConvAct", ins, [_t("float16", (2, 8, 9, 9))], pads=list(pads), epilogue=epilogue)


def test_epilogue_kinds():
    assert conv.epilogue_kind(_conv_act(RELU)[0]) == "relu"
    assert conv.epilogue_kind(_conv_act(ADD_RELU)[0]) == "add_relu"
    assert conv.epilogue_kind(_conv_act(None)[0]) == "none"
    assert conv.epilogue_kind(_conv_act(GELU_ERF)[0]) is None


def test_conv_act_fused_cudnn_tactics():
    assert _names(_conv_act(RELU, None)) == [("conv2d_relu", "channels_last"), ("conv2d_relu", "channels_last"),
                                             ("conv2d_relu", None), ("conv2d_nhwc", "channels_last"),
                                             ("conv2d_nhwc", "channels_last"), ("reference", None)]
    algos = [t["params"].get("algo") for t in conv.conv_candidates(*_conv_act(RELU, None), CUDA)]
    assert algos == [None, "benchmark", None, None, "benchmark"]  # cuDNN heuristics vs cudnnFind
    assert [n for n, _ in _names(_conv_act(ADD_RELU))][:3] == ["conv2d_add_relu"] * 3
    # broadcast residual, asymmetric pads, other epilogues, CPU: no fused cuDNN tactic
    assert "conv2d_add_relu" not in [n for n, _ in _names(_conv_act(ADD_RELU, (1, 8, 1, 1)))]
    assert "conv2d_relu" not in [n for n, _ in _names(_conv_act(RELU, None, pads=(0, 0, 1, 1)))]
    assert [n for n, _ in _names(_conv_act(GELU_ERF, None))] == ["conv2d_nhwc", "conv2d_nhwc", "reference"]
    assert [n for n, _ in _names(_conv_act(RELU, None), CPU)] == ["conv2d_nhwc", "reference"]
    transposed = _conv_act(RELU, None)
    transposed[0].attrs["transpose"] = 1
    assert _names(transposed) == [("reference", None)]


def _gemm(type_, epilogue=None, dtype="float16", **attrs):
    ins = [_t(dtype, (4, 16)), _t(dtype, (32, 16), "weight"), _t(dtype, (32,), "weight")]
    return _layer(type_, ins, [_t(dtype, (4, 32))], transB=1, epilogue=epilogue, **attrs)


def test_gemm_epilogue_tactics():
    assert gemm.act_of(*_gemm("fused.GemmAct", GELU_TANH)) == "gelu"
    # cuBLASLt's GELU is the tanh form: an erf GELU may use it in FP16/BF16 only
    assert gemm.act_of(*_gemm("fused.GemmAct", GELU_ERF)) == "gelu_approx"
    assert gemm.act_of(*_gemm("fused.GemmAct", GELU_ERF, "bfloat16")) == "gelu_approx"
    assert gemm.act_of(*_gemm("fused.GemmAct", GELU_ERF, "float32")) is None
    assert _names(_gemm("fused.GemmAct", GELU_ERF, "float32")) == [("gemm_addmm", None), ("reference", None)]
    assert _names(_gemm("fused.GemmAct", RELU)) == [("gemm_addmm_act", "relu"), ("gemm_addmm", None),
                                                    ("reference", None)]
    assert _names(_gemm("fused.GemmAct", GELU_ERF)) == [("gemm_addmm_act", "gelu_approx"), ("gemm_addmm", None),
                                                        ("reference", None)]
    assert _names(_gemm("Gemm")) == [("gemm_addmm", None), ("reference", None)]
    assert _names(_gemm("Gemm"), CPU) == [("reference", None)]


def test_matmul_act_tactics():
    ins = [_t("bfloat16", (2, 5, 16)), _t("bfloat16", (16, 32), "weight"), _t("bfloat16", (32,), "weight")]
    lay = _layer("fused.MatMulAct", ins, [_t("bfloat16", (2, 5, 32))], epilogue=GELU_TANH)
    assert _names(lay) == [("matmul_addmm_act", "gelu"), ("reference", None)]
    lay[0].attrs["epilogue"] = GELU_ERF
    assert _names(lay) == [("matmul_addmm_act", "gelu_approx"), ("reference", None)]
    lay[0].attrs["alpha"] = 0.5
    assert _names(lay) == [("reference", None)]


@pytest.mark.parametrize("dtype,d,mask,cap,want", [
    ("float16", 64, False, (9, 0), ["flash", "cudnn", "efficient"]),
    ("float16", 64, True, (9, 0), ["cudnn", "efficient"]),
    ("float16", 64, False, (8, 0), ["flash", "efficient"]),
    ("float32", 64, False, (9, 0), ["efficient"]),
    ("bfloat16", 20, False, (9, 0), ["efficient"])])
def test_sdpa_backends(monkeypatch, dtype, d, mask, cap, want):
    monkeypatch.setattr(attention, "capability", lambda dev: cap)
    ins = [_t(dtype, (2, 4, 10, d)), _t(dtype, (2, 4, 10, d)), _t(dtype, (2, 4, 10, d))]
    if mask:
        ins.append(_t("bool", (2, 1, 10, 10)))
    lay = _layer("fused.Attention", ins, [_t(dtype, (2, 4, 10, d))])
    got = [b for n, b in _names(lay) if n == "sdpa"]
    assert got == want + ["math"]  # math: opt level >= 4 only
    assert [c.get("level", 1) for c in kernels.candidates(*lay, CUDA) if c["name"] == "sdpa"][-1] == 4
    assert _names(lay, CPU) == [("reference", None)]
