"""cuBLASLt tactic legality on CPU: which epilogue expressions map to one cuBLASLt call."""
import torch

from tensorforge.kernels import LayerShapes
from tensorforge.kernels.aten.gemm_lt import epilogue_form, lt_candidates, problem
from tensorforge.runtime.plan import LayerSpec


def _in(i):
    return {"op": "input", "i": i}


def _layer(typ, ins, out, **attrs):
    """(layer, its shapes)."""
    lay = LayerSpec("l", typ, [f"i{k}" for k in range(len(ins))], ["o"], attrs=attrs)
    return lay, LayerShapes.of([None if s is None else {"dtype": s[0], "shape": list(s[1]), "kind": s[2]}
                                for s in ins], [{"dtype": out[0], "shape": list(out[1])}])


def test_epilogue_forms():
    add = {"nodes": [_in(0), _in(1), {"op": "Add", "args": [1, 0]}], "out": 2}
    add_relu = {"nodes": [_in(0), _in(1), {"op": "Add", "args": [0, 1]}, {"op": "Relu", "args": [2]}], "out": 3}
    erf = {"nodes": [_in(0), {"op": "Gelu", "args": [0], "attrs": {}}], "out": 1}
    tanh = {"nodes": [_in(0), {"op": "Gelu", "args": [0], "attrs": {"approximate": "tanh"}}], "out": 1}
    mul = {"nodes": [_in(0), _in(1), {"op": "Mul", "args": [0, 1]}], "out": 2}
    relu_add_bias2 = {"nodes": [_in(0), _in(1), _in(2), {"op": "Add", "args": [0, 1]}], "out": 3}
    assert epilogue_form(None, False) == ("none", False)
    assert epilogue_form(add, False) == ("none", True) and epilogue_form(add_relu, False) == ("relu", True)
    assert epilogue_form(erf, True) == ("gelu_approx", False) and epilogue_form(erf, False) is None
    assert epilogue_form(tanh, False) == ("gelu", False)
    assert epilogue_form(mul, True) is None and epilogue_form(relu_add_bias2, True) is None


def test_problem_legality():
    h = "float16"
    add = {"nodes": [_in(0), _in(1), {"op": "Add", "args": [0, 1]}], "out": 2}
    ok = _layer("fused.MatMulAct", [(h, (2, 5, 16), "activation"), (h, (16, 32), "weight"), (h, (32,), "weight"),
                                    (h, (2, 5, 32), "activation")], (h, (2, 5, 32)), epilogue=add)
    assert problem(*ok) == (10, 32, 16, "none", True, True)
    bcast = _layer("fused.MatMulAct", [(h, (2, 5, 16), "activation"), (h, (16, 32), "weight"), (h, (32,), "weight"),
                                       (h, (1, 5, 32), "activation")], (h, (2, 5, 32)), epilogue=add)
    assert problem(*bcast) is None  # a broadcast residual is not cuBLASLt's C
    f32 = _layer("MatMul", [("float32", (4, 16), "activation"), ("float32", (16, 8), "weight")], ("float32", (4, 8)))
    assert problem(*f32) is None
    act_b = _layer("MatMul", [(h, (4, 16), "activation"), (h, (16, 8), "activation")], (h, (4, 8)))
    assert problem(*act_b) is None
    gemm = _layer("Gemm", [(h, (4, 16), "activation"), (h, (8, 16), "weight"), (h, (1, 8), "weight")], (h, (4, 8)),
                  transB=1)
    assert problem(*gemm) == (4, 8, 16, "none", False, True)
    gemm[0].attrs["alpha"] = 0.5
    assert problem(*gemm) is None
    assert lt_candidates(*ok, torch.device("cpu")) == []
