"""dwconv compiled on CUDA: every offered config vs the references (fp16 / bf16 / fp32, odd shapes,
epilogues), a PP-LCNet-sized layer (1x640x640x32 NHWC, stride 1 and 2) vs cuDNN, and a
zoo:mobilenetv2_small FP16 engine with the tactic forced and with timed selection, vs ONNX Runtime."""
import numpy as np
import pytest
import torch

import tensorforge as tf
from tensorforge.kernels.triton import dwconv
from tensorforge.testing import run_ort
from tests.gpu import sweep
from tests.kernels.test_triton_dwconv import _expr, _layer, check_cases, force_dwconv

CL = torch.channels_last
CUDA = torch.device("cuda")


def _params(cfg):
    bh, bw, bc, nw = cfg
    return {"BLOCK_H": bh, "BLOCK_W": bw, "BLOCK_C": bc, "num_warps": nw}


CONFIGS = [cfg for cfg, _ in dwconv.configs(40)]  # the cases have 9..40 channels


@pytest.mark.fast
def test_default_config_fp16():
    check_cases("cuda", torch.float16, _params(CONFIGS[0]))


@pytest.mark.parametrize("cfg", sweep.pick(CONFIGS[1:], lambda c: (c[0] * c[1] * c[2], c[3])), ids=sweep.ident)
def test_other_configs_fp16(cfg):
    check_cases("cuda", torch.float16, _params(cfg))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_default_config_fp32_bf16(dtype):
    check_cases("cuda", dtype, _params(CONFIGS[0]))


@pytest.mark.parametrize("stride", [1, 2])
def test_pplcnet_sized_layer_vs_cudnn(stride):
    """1x32x640x640 fp16 NHWC, 3x3 + bias + hardswish, written into a planned NHWC buffer."""
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(1, 32, 640, 640, device="cuda", generator=g).half().contiguous(memory_format=CL)
    w = (torch.randn(32, 1, 3, 3, device="cuda", generator=g) * 0.3).half()
    b = torch.randn(32, device="cuda", generator=g).half()
    attrs = {"group": 32, "pads": [1, 1, 1, 1], "strides": [stride, stride], "epilogue": _expr("HardSwish")}
    want = torch.nn.functional.hardswish(torch.nn.functional.conv2d(x, w, b, stride=stride, padding=1, groups=32))
    for cfg in CONFIGS:
        out = torch.empty_like(want, memory_format=CL)
        got = dwconv.DwConvRunner(attrs, _params(cfg), None)([x, w, b], [out])[0]
        assert got is out
        torch.testing.assert_close(got.float(), want.float(), rtol=1e-2, atol=1e-2, msg=str(cfg))


def test_offered_through_the_triton_source():
    from tensorforge import kernels
    ts = kernels.candidates(*_layer(epilogue=_expr("HardSwish")), CUDA)
    assert [t["name"] for t in ts].count("dwconv") == len(dwconv.configs(32))


def _check_fp16(eng, model, feed):
    got = eng.create_execution_context().infer(feed)
    for k, r in run_ort(model, feed).items():
        g = got[k].float().cpu().numpy().astype(np.float64)
        cos = float(g.ravel() @ r.ravel() / (np.linalg.norm(g) * np.linalg.norm(r)))
        assert cos >= 0.999, (k, cos)


def test_mobilenetv2_small_fp16_with_dwconv_forced(monkeypatch):
    from tensorforge import zoo
    planned = force_dwconv(monkeypatch, CONFIGS[0])
    model, feed = zoo.get_model("mobilenetv2_small"), zoo.random_inputs("mobilenetv2_small", 4, seed=1)
    eng = tf.Builder(tf.BuilderConfig(device="cuda", fp16=True, opt_level=0)).build(model)
    dw = [lay for lay in eng.plan.layers if lay.tactic.get("name") == "dwconv"]
    assert len(dw) >= 6 and any(lay.tactic["params"].get("out_nhwc") == [0] for lay in dw)
    _check_fp16(eng, model, feed)
    assert planned and all(p is not None for p in planned)  # every dw layer ran the kernel


def test_mobilenetv2_small_fp16_timed_selection():
    """Level 3: dwconv is timed against cuDNN for every depthwise layer (whichever wins is correct)."""
    from tensorforge import zoo
    model, feed = zoo.get_model("mobilenetv2_small"), zoo.random_inputs("mobilenetv2_small", 4, seed=1)
    eng = tf.Builder(tf.BuilderConfig(device="cuda", fp16=True, opt_level=3)).build(model)
    _check_fp16(eng, model, feed)
