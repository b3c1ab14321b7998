"""aten "cublaslt_fp8" (kernels/aten/scaled_lt.py): which epilogues fit cuBLASLt's FP8 epilogue, the
tactic list of a problem, and no candidates off CUDA (tests/gpu/test_quant_kernels_gpu.py runs it)."""
import torch

from tensorforge.kernels.aten import scaled_lt
from tensorforge.kernels.quant_gemm import problem
from tensorforge.ops.fused.expr import ExprBuilder

from . import qgemm_cases as qc

F8 = qc.F8


def _expr(act=None, bias=True, q=None, approximate="none"):
    b = ExprBuilder()
    y = b.op("Add", [b.input(0), b.input(1)]) if bias else b.input(0)
    if act:
        y = b.op(act, [y], {"approximate": approximate} if act == "Gelu" else {})
    if q:
        y = b.op("Div", [b.op("Cast", [y], {"to": 1}), b.const(q, "float32")])
        y = b.op("Cast", [b.op("Clip", [y], {"min": -448.0, "max": 448.0})], {"to": 17})
    return b.build(y)


def test_forms_of_a_quantized_ffn():
    """The passes' FP8 FFN block: the up-projection (bias, ReLU, output Q folded into the expression)
    fits; so does the down-projection, whose quantized residual the LayerNorm after it now adds
    (passes.quant.skip_norm; an e4m3 residual in the expression would not fit: test_forms)."""
    forms = [scaled_lt.epilogue_form(lay.attrs, len(lay.inputs) - 4)
             for lay, _, _ in qc.quantized_layers("fp8") if lay.type == "fused.QMatMul"]
    assert forms[0]["act"] == "relu" and forms[0]["bias_extra"] and forms[0]["q_scale"] > 0
    assert forms[1] == {"act": "none", "bias_extra": True, "q_scale": None}


def test_forms():
    form = scaled_lt.epilogue_form
    assert form({"epilogue": _expr("Gelu", q=0.01)}, 1) == {"act": "gelu", "bias_extra": True, "q_scale": 0.01}
    assert form({"epilogue": _expr(None)}, 1) == {"act": "none", "bias_extra": True, "q_scale": None}
    assert form({"out_q": [0.5, 0, F8]}, 0) == {"act": "none", "bias_extra": False, "q_scale": 0.5}
    assert form({"epilogue": _expr("Relu", bias=False), "out_q": [0.5, 0, F8]}, 0)["act"] == "relu"
    assert form({"epilogue": _expr("Gelu", approximate="tanh")}, 1)["act"] == "gelu"
    assert form({"epilogue": _expr("Gelu")}, 1) is None  # an erf GELU to a float output: not as tanh
    assert form({"out_q": [0.5, 0, "int8"]}, 0) is None and form({"out_q": [0.5, 3, F8]}, 0) is None
    assert form({"epilogue": _expr("Sigmoid")}, 1) is None
    assert form({"epilogue": _expr(None)}, 2) is None  # an extra the expression does not read as bias
    assert form({"epilogue": _expr("Gelu", q=0.01), "out_q": [0.5, 0, F8]}, 1) is None  # two Qs


def test_tactics_for_a_problem():
    lay, shapes, attrs, _ = qc.make("fused.QGemm", F8, (64,), 48, 80, epi="gelu", out_q=F8)
    p, f = problem(lay, shapes), scaled_lt.epilogue_form(attrs, 0)
    assert scaled_lt.tactics_for(p, f, 8) == []  # per-channel scales: refused by cuBLASLt on Hopper
    lay, shapes, attrs, _ = qc.make("fused.QGemm", F8, (64,), 48, 80, epi="gelu", out_q=F8, per_channel=False)
    ts = scaled_lt.tactics_for(problem(lay, shapes), scaled_lt.epilogue_form(attrs, 0), 8)
    assert len(ts) == 8 and sum("level" not in t for t in ts) == 4
    lay, shapes, attrs, _ = qc.make("fused.QGemm", F8, (64,), 48, 80, per_channel=False, out_q=F8)
    ts = scaled_lt.tactics_for(problem(lay, shapes), scaled_lt.epilogue_form(attrs, 0), 1)
    assert [(t["params"]["algo"], t["params"]["fast_accum"]) for t in ts] == [(0, 0), (0, 1)]
    lay, shapes, attrs, _ = qc.make("fused.QGemm", F8, (64,), 48, 72, out_q=F8, per_channel=False)  # K % 16
    assert scaled_lt.tactics_for(problem(lay, shapes), scaled_lt.epilogue_form(attrs, 0), 8) == []
    lay, shapes, attrs, _ = qc.make("fused.QGemm", "int8", (64,), 48, 80, out_q="int8", per_channel=False)
    assert scaled_lt.tactics_for(problem(lay, shapes), {"act": "none", "bias_extra": False, "q_scale": 1.0},
                                 8) == []


def test_no_candidates_off_cuda():
    lay, shapes, _, _ = qc.make("fused.QGemm", F8, (64,), 48, 80, epi="gelu", out_q=F8)
    assert scaled_lt.scaled_lt_candidates(lay, shapes, torch.device("cpu")) == []
