"""Normalizations against ONNX Runtime: Instance/Group/Lp/RMS normalization, MVN, LRN."""
import numpy as np
import pytest

from tensorforge.testing import rand

try:
    from .node_models import C, N, check, check_batches, check_node, infer_shapes
except ImportError:
    from node_models import C, N, check, check_batches, check_node, infer_shapes


@pytest.mark.parametrize("shape", [(2, 3, 5), (1, 4, 3, 3), (2, 2, 2, 3, 2)])
@pytest.mark.parametrize("eps", [1e-5, 1e-2])
def test_instance_norm(shape, eps):
    c = shape[1]
    check("InstanceNormalization", [rand(shape), C(rand((c,), seed=1), np.float32), C(rand((c,), seed=2),
                                                                                   np.float32)],
          {"epsilon": eps}, opset=11)


def test_instance_norm_symbolic_batch():
    check_batches("InstanceNormalization", lambda b: [rand((b, 3, 4), seed=b), C(rand((3,), seed=1), np.float32),
                                                      C(rand((3,), seed=2), np.float32)], opset=11)


@pytest.mark.parametrize("opset", [18, 21])
@pytest.mark.parametrize("shape,groups", [((2, 4, 3, 3), 2), ((1, 6, 5), 3), ((2, 4, 2, 2), 4), ((1, 3, 4), 1)])
def test_group_norm(opset, shape, groups):
    n_param = groups if opset < 21 else shape[1]
    scale = C(rand((n_param,), seed=1, lo=0.5, hi=1.5), np.float32)
    bias = C(rand((n_param,), seed=2), np.float32)
    check("GroupNormalization", [rand(shape), scale, bias], {"num_groups": groups, "epsilon": 1e-4},
          opset=opset)


def test_group_norm_symbolic_batch():
    check_batches("GroupNormalization", lambda b: [rand((b, 4, 3), seed=b), C(rand((4,), seed=1), np.float32),
                                                   C(rand((4,), seed=2), np.float32)],
                  {"num_groups": 2}, opset=21)


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_lp_norm(p, axis):
    check("LpNormalization", [rand((3, 4, 2))], {"p": p, "axis": axis}, opset=11)


def test_lp_norm_symbolic_batch():
    check_batches("LpNormalization", lambda b: [rand((b, 5), seed=b)], {"axis": 1}, opset=11)


@pytest.mark.parametrize("axes", [None, [0, 2, 3], [1], [2, 3], [-1]])
def test_mean_variance_norm(axes):
    attrs = {} if axes is None else {"axes": axes}
    check("MeanVarianceNormalization", [rand((2, 3, 4, 5))], attrs, opset=13)


def test_mean_variance_norm_symbolic_batch():
    check_batches("MeanVarianceNormalization", lambda b: [rand((b, 3, 4), seed=b)], {"axes": [2]}, opset=13,
                  rtol=1e-5, atol=1e-5)
    assert infer_shapes("MeanVarianceNormalization", [rand((2, 3, 4, 4))], dyn={0: {0: "N"}}) == [(N, 3, 4, 4)]


def test_rms_norm():
    check_node("RMSNormalization", [rand((2, 3, 7), seed=30), rand((7,), seed=31)], {"epsilon": 1e-3},
               opset=23)
    check_node("RMSNormalization", [rand((2, 3, 7), seed=32), rand((3, 7), seed=33)], {"axis": 1}, opset=23)


def test_lrn():
    check_node("LRN", [rand((2, 5, 3, 4), seed=40)], {"size": 3, "alpha": 0.01, "beta": 0.6, "bias": 1.5})
