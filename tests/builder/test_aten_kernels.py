"""The aten variant kernels that can run on CPU agree with the layer's reference."""
import pytest
import torch

from tensorforge.builder.autotune import layer_fn
from tensorforge.kernels import reference
from tensorforge.runtime.plan import LayerSpec

from .test_aten_candidates import ADD_RELU, GELU_TANH, RELU

CPU = torch.device("cpu")


def _check(type_, attrs, tactic, inputs, atol=1e-5):
    lay = LayerSpec("l", type_, [f"i{k}" for k in range(len(inputs))], ["o"], attrs=attrs)
    got = layer_fn(lay, tactic, 17, CPU)(inputs)
    ref = layer_fn(lay, reference(), 17, CPU)(inputs)
    for g, r in zip(got, ref):
        assert g.shape == r.shape and g.dtype == r.dtype
        torch.testing.assert_close(g.contiguous(), r, atol=atol, rtol=1e-5)


def _r(*shape, seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("epilogue", [None, RELU, ADD_RELU])
def test_conv_nhwc_with_epilogue(epilogue):
    x, w, b = _r(2, 3, 7, 9), _r(5, 3, 3, 3, seed=1), _r(5, seed=2)
    ins = [x, w, b] + ([_r(2, 5, 4, 4, seed=3)] if epilogue is ADD_RELU else [])
    attrs = {"pads": [1, 0, 1, 1], "strides": [2, 2]}
    t = {"source": "aten", "name": "conv2d_nhwc", "params": {"weight_layout": "channels_last"}}
    _check("fused.ConvAct" if epilogue else "Conv", dict(attrs, epilogue=epilogue) if epilogue else attrs, t, ins)
    _check("Conv", {"group": 3, "pads": [1, 1, 1, 1]}, t, [_r(1, 3, 6, 6), _r(6, 1, 3, 3, seed=4)])


@pytest.mark.parametrize("act,epi", [("relu", RELU), ("gelu", GELU_TANH)])
def test_gemm_variants(act, epi):
    a, w, c = _r(5, 7), _r(9, 7, seed=1), _r(9, seed=2)
    _check("Gemm", {"transB": 1}, {"source": "aten", "name": "gemm_addmm", "params": {}}, [a, w, c])
    _check("fused.GemmAct", {"transB": 1, "epilogue": epi}, {"source": "aten", "name": "gemm_addmm", "params": {}},
           [a, w, c])
    if act == "gelu":
        return  # torch's CPU _addmm_activation uses erf GELU, CUDA's the tanh form: tests/gpu checks it
    _check("fused.GemmAct", {"transB": 1, "epilogue": epi},
           {"source": "aten", "name": "gemm_addmm_act", "params": {"act": act}}, [a, w, c])
    _check("fused.MatMulAct", {"epilogue": epi}, {"source": "aten", "name": "matmul_addmm_act", "params": {"act": act}},
           [_r(2, 3, 7), _r(7, 9, seed=1), c])


@pytest.mark.parametrize("backend", ["math", "efficient"])
def test_sdpa_variant(backend):
    q, k, v = _r(2, 6, 16, seed=1), _r(2, 6, 16, seed=2), _r(2, 6, 16, seed=3)
    attrs = {"q_view": [["reshape", [2, 6, 2, 8]], ["transpose", [0, 2, 1, 3]]],
             "k_view": [["reshape", [2, 6, 2, 8]], ["transpose", [0, 2, 3, 1]]], "k_transposed": 1,
             "v_view": [["reshape", [2, 6, 2, 8]], ["transpose", [0, 2, 1, 3]]],
             "out_view": [["transpose", [0, 2, 1, 3]], ["reshape", [2, 6, 16]]], "scale": 0.3}
    t = {"source": "aten", "name": "sdpa", "params": {"backend": backend}}
    try:
        _check("fused.Attention", attrs, t, [q, k, v], atol=1e-5)
    except RuntimeError as e:  # a backend without a CPU kernel says so; the builder skips it
        assert backend != "math", e
