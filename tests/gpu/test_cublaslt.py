"""cuBLASLt tactic (kernels/aten/gemm_lt, cublaslt): every offered heuristic algorithm matches the
reference for bias / ReLU / GELU / residual epilogues, plain and transposed weights, odd shapes,
unaligned views, and inside a CUDA graph."""
import pytest
import torch

from tensorforge import kernels
from tensorforge.builder.autotune import layer_fn
from tensorforge.kernels.aten.gemm_lt import lt_candidates

from .test_tactics import ADD_RELU, CUDA, GELU_TANH, RELU, _check_all, _layer, _rand

# the Triton GEMMs also offered here run as tests/gpu/sweep's subset (their space: test_triton_gemm)
pytestmark = [pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
              pytest.mark.usefixtures("triton_sweep")]
ADD = {"nodes": [{"op": "input", "i": 0}, {"op": "input", "i": 1}, {"op": "Add", "args": [1, 0], "attrs": {}}],
       "out": 2}
GELU_ERF = {"nodes": [{"op": "input", "i": 0}, {"op": "Gelu", "args": [0], "attrs": {}}], "out": 1}


def _matmul_layer(dtype, epilogue, m=(3, 37), k=72, n=104, bias=True):
    out = (dtype, tuple(m) + (n,))
    specs = [(dtype, tuple(m) + (k,), "activation"), (dtype, (k, n), "weight"),
             (dtype, (n,), "weight") if bias else None]
    if epilogue in (ADD, ADD_RELU):
        specs.append((dtype, out[1], "activation"))
    attrs = {"epilogue": epilogue} if epilogue else {}
    specs = specs if bias or epilogue else specs[:2]
    return _layer("fused.MatMulAct" if epilogue or bias else "MatMul", specs, [out], attrs), specs


@pytest.mark.fast(dtype="float16", epi=ADD_RELU, bias=True)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("epi", [None, RELU, GELU_TANH, GELU_ERF, ADD, ADD_RELU])
@pytest.mark.parametrize("bias", [True, False])
def test_every_algo_matches_reference(dtype, epi, bias):
    case, specs = _matmul_layer(dtype, epi, bias=bias)
    cands = [c for c in lt_candidates(*case, CUDA)]
    assert cands and {c["params"]["res"] for c in cands} == {int(epi in (ADD, ADD_RELU))}
    names = _check_all(case, dtype, specs)
    assert names.count("cublaslt") == len(cands)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_gemm_transposed_weight(dtype):
    specs = [(dtype, (45, 64), "activation"), (dtype, (40, 64), "weight"), (dtype, (40,), "weight")]
    case = _layer("fused.GemmAct", specs, [(dtype, (45, 40))], {"transB": 1, "epilogue": RELU})
    assert "cublaslt" in _check_all(case, dtype, specs)


@pytest.mark.fast
def test_unaligned_views_in_a_cuda_graph():
    """Inputs at odd element offsets (2-byte alignment) and a graph replayed with new data."""
    (lay, shapes), specs = _matmul_layer("float16", ADD_RELU, m=(64,), k=256, n=128)
    t = lt_candidates(lay, shapes, CUDA)[0]
    fn = layer_fn(lay, {k: v for k, v in t.items() if k != "level"}, 17, CUDA)
    ref = layer_fn(lay, kernels.reference(), 17, CUDA)
    base = _rand((64 * 256 + 1,), torch.float16, 1)
    a = base[1:].view(64, 256)  # 2-byte aligned
    w, b = _rand((256, 128), torch.float16, 2, "weight"), _rand((128,), torch.float16, 3, "weight")
    res = _rand((64, 128), torch.float16, 4)
    out = torch.empty(64, 128, dtype=torch.float16, device=CUDA)
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        fn([a, w, b, res], [out])
    s.synchronize()
    torch.testing.assert_close(out, ref([a, w, b, res])[0], rtol=1e-2, atol=1e-2)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g, stream=s):
        fn([a, w, b, res], [out])
    res.copy_(_rand((64, 128), torch.float16, 5))
    g.replay()
    torch.cuda.synchronize()
    torch.testing.assert_close(out, ref([a, w, b, res])[0], rtol=1e-2, atol=1e-2)
