"""Bias correction after weight quantization: the corrected bias is b - (W_q - W) . E[x], and the
corrected Q/DQ model's output mean per channel moves back to the float model's (Conv, depthwise, Gemm)."""
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from tensorforge.quant import quantize
from tensorforge.quant.biascorr import bias_correct
from tensorforge.testing import run_ort


def _model(kind, rng):
    if kind == "gemm":
        w = rng.standard_normal((64, 48)).astype(np.float32)  # transB: [N, K]
        node = helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="fc", transB=1)
        xs, ys, b = [None, 48], [None, 64], np.zeros(64, np.float32)
    else:
        c, grp = (32, 32) if kind == "depthwise" else (32, 1)
        w = rng.standard_normal((32, c // grp, 3, 3)).astype(np.float32)
        node = helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", group=grp, pads=[1, 1, 1, 1])
        xs, ys, b = [None, c, 8, 8], [None, 32, 8, 8], np.zeros(32, np.float32)
    w[:, ..., 0] *= 9.0  # one large weight per row makes the rounding step coarse for the others
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, xs)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ys)],
                          [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), xs


def _mean(y):
    return y.reshape(y.shape[0], y.shape[1], -1).mean((0, 2))


@pytest.mark.parametrize("kind", ["conv", "depthwise", "gemm"])
def test_bias_correction_removes_the_mean_shift(kind):
    rng = np.random.default_rng(0)
    m, xs = _model(kind, rng)
    shape = [16] + xs[1:]
    feeds = [{"x": (rng.standard_normal(shape) + 2.0).astype(np.float32)} for _ in range(4)]  # E[x] = 2, not 0
    q = quantize(m, "int8", feeds, "max", high_precision="fp32")
    qb = quantize(m, "int8", feeds, "max", high_precision="fp32", bias_correction=True)
    x = {"x": (rng.standard_normal(shape) + 2.0).astype(np.float32)}
    ref, plain, fixed = (_mean(run_ort(mm, x)["y"]) for mm in (m, q, qb))
    before, after = np.abs(plain - ref).mean(), np.abs(fixed - ref).mean()
    assert before > 1e-3 and after < 0.25 * before, (before, after)


def test_bias_correction_formula_on_a_constant_input():
    rng = np.random.default_rng(1)
    m, _ = _model("gemm", rng)
    x = np.full((4, 48), 0.5, np.float32)
    qb = bias_correct(quantize(m, "int8", [{"x": x}], "max", high_precision="fp32"), [{"x": x}])
    inits = {i.name: numpy_helper.to_array(i) for i in qb.graph.initializer}
    w = inits["w"]
    s = inits["w_w_scale"][:, None]
    wq = np.clip(np.round(w / s), -127, 127) * s
    xq = np.round(0.5 / (0.5 / 127)) * (0.5 / 127)  # the activation's own Q/DQ (max calibration: exact)
    np.testing.assert_allclose(inits["b"], -(wq - w) @ np.full(48, xq), rtol=1e-4, atol=1e-6)


def test_bias_correction_needs_data_and_float_weights():
    m, _ = _model("conv", np.random.default_rng(2))
    feeds = [{"x": np.ones((2, 32, 8, 8), np.float32)}]
    with pytest.raises(Exception, match="bias correction"):
        quantize(m, "int8", feeds, "max", dq_only=True, bias_correction=True)
    with pytest.raises(Exception, match="bias correction"):
        quantize(m, "int8", None, "max", cache={"x": 0.01}, bias_correction=True)
