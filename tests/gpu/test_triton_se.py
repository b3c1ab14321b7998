"""se compiled on CUDA: both gate variants vs ONNX Runtime's unfused chain and the fused reference
(fp16 / bf16 / fp32, odd shapes, NCHW and NHWC), model-sized blocks, and a small SE model built
as an FP16 engine with the tactic forced and with timed selection, vs ONNX Runtime."""
import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import tensorforge as tf
from tensorforge.kernels.triton import se
from tensorforge.ops import registry
from tensorforge.testing import make_model, run_ort
from tests.kernels.test_triton_se import check_cases, force_se

CL = torch.channels_last
FUSED = {"GATE": "fused", "BLOCK_P": 64, "BLOCK_C": 64, "num_warps": 4}
SPLIT = {"GATE": "split", "BLOCK_P": 64, "BLOCK_C": 64, "num_warps": 4}


@pytest.mark.fast
def test_fused_gate_fp16():
    check_cases("cuda", torch.float16, FUSED)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_split_gate(dtype):
    check_cases("cuda", dtype, SPLIT)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_gate_fp32_bf16(dtype):
    check_cases("cuda", dtype, FUSED)


@pytest.mark.parametrize("nhwc", [False, True])
@pytest.mark.parametrize("n,c,cr,hw", [(8, 512, 128, 7), (1, 96, 24, 160)])
def test_model_sized_blocks(nhwc, n, c, cr, hw):
    """PP-LCNet x1.0's last SE at batch 8 (8x512x7x7) and PP-OCR det's largest neck SE (1x96x160x160),
    fp16, every offered config, into a planned buffer."""
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(n, c, hw, hw, device="cuda", generator=g).half()
    x = x.contiguous(memory_format=CL) if nhwc else x
    ins = [x, (torch.randn(cr, c, 1, 1, device="cuda", generator=g) * c ** -0.5).half(),
           (torch.randn(cr, device="cuda", generator=g) * 0.1).half(),
           (torch.randn(c, cr, 1, 1, device="cuda", generator=g) * cr ** -0.5).half(),
           (torch.randn(c, device="cuda", generator=g) * 0.1).half()]
    attrs = {"act1": "Relu", "gate": "HardSigmoid", "alpha": 1 / 6, "beta": 0.5}
    want = registry.get("fused.SqueezeExcite").run(ins, attrs, 17)[0]
    for t in se.configs(n, c, hw * hw):
        out = torch.empty_like(x)
        got = se.SERunner(attrs, t["params"], None)(ins, [out])[0]
        assert got is out
        torch.testing.assert_close(got.float(), want.float(), rtol=1e-2, atol=1e-2, msg=str(t))


def _se_model():
    """conv3x3 + hardswish -> SE (relu, hardsigmoid) -> 1x1 conv, as Paddle exports PP-LCNet."""
    rng = np.random.default_rng(0)
    shapes = {"w0": (24, 8, 3, 3), "w1": (6, 24, 1, 1), "b1": (6,), "w2": (24, 6, 1, 1), "b2": (24,),
              "w3": (16, 24, 1, 1)}
    init = [numpy_helper.from_array((rng.standard_normal(s) * 0.3).astype(np.float32), n) for n, s in shapes.items()]
    nodes = [helper.make_node("Conv", ["x", "w0"], ["c0"], pads=[1, 1, 1, 1]),
             helper.make_node("HardSwish", ["c0"], ["a"]),
             helper.make_node("GlobalAveragePool", ["a"], ["p"]), helper.make_node("Conv", ["p", "w1", "b1"], ["c1"]),
             helper.make_node("Relu", ["c1"], ["h"]), helper.make_node("Conv", ["h", "w2", "b2"], ["c2"]),
             helper.make_node("HardSigmoid", ["c2"], ["s"], alpha=1 / 6, beta=0.5),
             helper.make_node("Mul", ["a", "s"], ["m"]), helper.make_node("Conv", ["m", "w3"], ["y"])]
    return make_model(nodes, [("x", TensorProto.FLOAT, [3, 8, 9, 11])], [("y", TensorProto.FLOAT, None)], init)


def _check(eng, model, feed):
    assert any(lay.type == "fused.SqueezeExcite" for lay in eng.plan.layers)
    got = eng.create_execution_context().infer(feed)
    for k, r in run_ort(model, feed).items():
        g = got[k].float().cpu().numpy().astype(np.float64)
        cos = float(g.ravel() @ r.ravel() / (np.linalg.norm(g) * np.linalg.norm(r)))
        assert cos >= 0.999, (k, cos)


def test_se_model_fp16_forced(monkeypatch):
    planned = force_se(monkeypatch, FUSED)
    model, feed = _se_model(), {"x": np.random.default_rng(1).uniform(-1, 1, (3, 8, 9, 11)).astype(np.float32)}
    eng = tf.Builder(tf.BuilderConfig(device="cuda", fp16=True, opt_level=0)).build(model)
    assert [lay.tactic["name"] for lay in eng.plan.layers if lay.type == "fused.SqueezeExcite"] == ["se"]
    _check(eng, model, feed)
    assert planned and all(p is not None for p in planned)


def test_se_model_fp16_timed_selection():
    """Level 3: se is timed against the torch-ops reference (whichever wins is correct)."""
    model, feed = _se_model(), {"x": np.random.default_rng(2).uniform(-1, 1, (3, 8, 9, 11)).astype(np.float32)}
    _check(tf.Builder(tf.BuilderConfig(device="cuda", fp16=True, opt_level=3)).build(model), model, feed)
