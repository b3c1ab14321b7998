"""Training ops: NLL / softmax cross-entropy losses against ONNX Runtime, the
ai.onnx.preview.training optimizers against onnx.reference."""
import numpy as np
import pytest
from onnx.reference import ReferenceEvaluator

from tensorforge.testing import assert_close, rand, run_tf

try:
    from .node_models import F, check_node, domain_model
except ImportError:
    from node_models import F, check_node, domain_model


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_losses(reduction):
    x = rand((3, 5, 4), seed=43)
    t = np.array([[0, 4, 2, 1], [3, 3, 1, 0], [2, 1, 4, 4]], np.int64)
    w = rand((5,), seed=44, lo=0.2, hi=1.0)
    check_node("NegativeLogLikelihoodLoss", [x, t, w], {"reduction": reduction, "ignore_index": 4}, opset=13,
          rtol=1e-4)
    check_node("SoftmaxCrossEntropyLoss", [x, t], {"reduction": reduction}, opset=13, outs=2, rtol=1e-4)


def test_optimizers():
    r, t = np.array(0.1, np.float32), np.array(3, np.int64)
    xs, gs, vs, hs = (rand((4, 3), seed=s) for s in (48, 49, 50, 51))
    hs = np.abs(hs)
    for op, states, attrs in (("Adagrad", [("h", hs)], {"decay_factor": 0.1, "epsilon": 1e-5, "norm_coefficient": 1e-3}),
                              ("Momentum", [("v", vs)], {"alpha": 0.9, "beta": 0.1, "mode": "nesterov",
                                                         "norm_coefficient": 1e-2}),
                              ("Adam", [("v", vs), ("h", hs)], {"alpha": 0.9, "beta": 0.8, "epsilon": 1e-3,
                                                                "norm_coefficient": 1e-3})):
        ins = [("r", r), ("t", t), ("x", xs), ("g", gs)] + states
        outs = [("x2", F)] + [(n + "2", F) for n, _ in states]
        m = domain_model(op, "ai.onnx.preview.training", ins, outs, attrs, 1)
        feed = dict(ins)
        ref = dict(zip([o for o, _ in outs], ReferenceEvaluator(m).run(None, feed)))
        assert_close(run_tf(m, feed), ref, rtol=1e-5, atol=1e-6)
