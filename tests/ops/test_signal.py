"""Signal ops against ONNX Runtime: window functions, DFT, STFT."""
import numpy as np
import pytest

from tensorforge.testing import rand

try:
    from .node_models import F, check_node, const
except ImportError:
    from node_models import F, check_node, const


@pytest.mark.parametrize("op", ["HannWindow", "HammingWindow", "BlackmanWindow"])
@pytest.mark.parametrize("periodic", [0, 1])
def test_windows(op, periodic):
    check_node(op, [const(np.int64(11))], {"periodic": periodic}, opset=17, out_types=[F], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("attrs", [{}, {"onesided": 1}, {"inverse": 1}])
def test_dft_stft(attrs):
    x = rand((2, 9, 3, 2 if attrs.get("inverse") else 1), seed=6)
    check_node("DFT", [x, None, const(np.int64(1))], attrs, opset=20, rtol=1e-4, atol=1e-5)
    check_node("STFT", [rand((2, 40, 1), seed=7), const(np.int64(6)), rand((8,), seed=8)], opset=17,
          rtol=1e-4, atol=1e-5)
