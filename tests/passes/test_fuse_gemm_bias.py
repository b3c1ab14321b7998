"""MatMul + constant bias of any broadcastable shape: scalar / [1] / [1, 1] biases are broadcast to
[N] explicitly (the fused bias is always [N]); a bias that broadcasts over other dims stays an Add."""
import numpy as np
import pytest

from tensorforge.passes import fuse_epilogue, fuse_gemm

from .util import check, init, model, node, ops, randn

W = init("w", randn((4, 8), seed=3))
FEED = {"x": randn((2, 4), seed=1)}


@pytest.mark.parametrize("shape", [(), (1,), (1, 1), (8,), (1, 8)])
def test_matmul_plus_broadcast_bias_fuses_with_an_n_vector(shape):
    b = init("b", np.full(shape, 0.75, np.float32) + (np.arange(8, dtype=np.float32) * 0.1 if 8 in shape else 0))
    m = model([("MatMul", ["x", "w"], ["mm"]), ("Add", ["mm", "b"], ["y"])], [("x", [2, 4])], ["y"], [W, b])
    g = check(m, FEED, [fuse_gemm, fuse_epilogue])
    n = node(g, "fused.MatMulAct")
    assert tuple(n.inputs[2].shape) == (8,) and n.inputs[2].const.shape == (8,)


def test_scalar_bias_first_operand():
    m = model([("MatMul", ["x", "w"], ["mm"]), ("Add", ["b", "mm"], ["y"])], [("x", [2, 4])], ["y"],
              [W, init("b", np.float32(-1.5))])
    g = check(m, FEED, [fuse_gemm])
    assert ops(g) == ["fused.MatMulAct"]


def test_bias_broadcasting_over_rows_declines():
    m = model([("MatMul", ["x", "w"], ["mm"]), ("Add", ["mm", "b"], ["y"])], [("x", [2, 4])], ["y"],
              [W, init("b", randn((2, 1), seed=4))])
    g = check(m, FEED, [fuse_gemm])
    assert ops(g) == ["MatMul", "Add"]


def test_scalar_bias_with_symbolic_n_declines():
    m = model([("MatMul", ["x", "w2"], ["mm"]), ("Add", ["mm", "b"], ["y"])],
              [("x", [2, 4]), ("w2", [4, "N"])], ["y"], [init("b", np.float32(0.5))])
    g = check(m, {"x": FEED["x"], "w2": randn((4, 3), seed=5)}, [fuse_gemm])
    assert ops(g) == ["MatMul", "Add"]
