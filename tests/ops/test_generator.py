"""Generators against ONNX Runtime: EyeLike."""
import pytest
from onnx import TensorProto

from tensorforge.testing import rand

try:
    from .node_models import F, I64, check, check_batches
except ImportError:
    from node_models import F, I64, check, check_batches


@pytest.mark.parametrize("attrs,out", [({}, F), ({"k": 1}, F), ({"k": -2, "dtype": TensorProto.INT64}, I64),
                                       ({"dtype": TensorProto.INT32}, TensorProto.INT32)])
@pytest.mark.parametrize("shape", [(3, 3), (2, 5)])
def test_eyelike(attrs, out, shape):
    check("EyeLike", [rand(shape)], attrs, opset=11, out_types=[out])


def test_eyelike_symbolic():
    check_batches("EyeLike", lambda b: [rand((b, 4), seed=b)], {"k": 1}, opset=11)
