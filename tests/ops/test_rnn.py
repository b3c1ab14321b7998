"""RNN / GRU / LSTM against ONNX Runtime in every direction."""
import numpy as np
import pytest

from tensorforge.testing import rand

try:
    from .node_models import check_node
except ImportError:
    from node_models import check_node


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_recurrent(op, direction):
    gates = {"RNN": 1, "GRU": 3, "LSTM": 4}[op]
    d, h, t, b, i = (2 if direction == "bidirectional" else 1), 5, 4, 3, 6
    ins = [rand((t, b, i), seed=13), rand((d, gates * h, i), seed=14), rand((d, gates * h, h), seed=15),
           rand((d, 2 * gates * h), seed=16), np.array([4, 2, 3], np.int32), rand((d, b, h), seed=17)]
    attrs = {"hidden_size": h, "direction": direction}
    if op == "LSTM":
        ins += [rand((d, b, h), seed=18), rand((d, 3 * h), seed=19)]
    if op == "GRU":
        attrs["linear_before_reset"] = 1
    check_node(op, ins, attrs, opset=14, outs=3 if op == "LSTM" else 2, rtol=1e-4, atol=1e-5)
