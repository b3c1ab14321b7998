"""Matrix products against ONNX Runtime: Einsum, Gemm edge cases, Det."""
import pytest

from tensorforge.testing import rand

try:
    from .node_models import N, check, check_batches, check_node, infer_shapes
except ImportError:
    from node_models import N, check, check_batches, check_node, infer_shapes


@pytest.mark.parametrize("eq,shapes", [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("ij->ji", [(3, 4)]),
    ("ii->i", [(4, 4)]),
    ("ij,ij", [(3, 4), (3, 4)]),
    ("ba", [(3, 4)]),
    ("...ij,...jk->...ik", [(2, 3, 4), (2, 4, 5)]),
    ("...ij->...ji", [(2, 3, 3, 4)]),
    ("i,j->ij", [(3,), (5,)]),
    ("bhqd, bhkd -> bhqk", [(1, 2, 3, 4), (1, 2, 5, 4)]),
])
def test_einsum(eq, shapes):
    ins = [rand(s, seed=i) for i, s in enumerate(shapes)]
    check("Einsum", ins, {"equation": eq}, opset=12, rtol=1e-5, atol=1e-5)


def test_einsum_symbolic_batch():
    check_batches("Einsum", lambda b: [rand((b, 3, 4), seed=b), rand((b, 4, 2), seed=b + 1)],
                  {"equation": "bij,bjk->bik"}, opset=12, dyn_inputs=(0, 1))
    assert infer_shapes("Einsum", [rand((2, 3)), rand((3, 5))], {"equation": "ij,jk"},
                        dyn={0: {0: "N"}}) == [(N, 5)]


@pytest.mark.parametrize("ta,tb,c_shape", [(0, 0, (5,)), (1, 0, (3, 1)), (0, 1, ()), (1, 1, None)])
def test_gemm_edges(ta, tb, c_shape):
    a = rand((4, 3) if ta else (3, 4), seed=60)
    b = rand((5, 4) if tb else (4, 5), seed=61)
    c = rand(c_shape, seed=62) if c_shape is not None else None
    check_node("Gemm", [a, b] + ([c] if c is not None else []), {"transA": ta, "transB": tb, "alpha": 0.7, "beta": 1.3},
          opset=13)


def test_det():
    check_node("Det", [rand((2, 3, 3), seed=39)], rtol=1e-4)
