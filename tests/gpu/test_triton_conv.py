"""conv_igemm compiled on CUDA: every config vs the reference (fp16 / bf16, NCHW and NHWC inputs,
odd sizes, padding, dilation, epilogues), tactic offers, and zoo:resnet50_small FP16 engines with
the Triton conv forced (and with timed selection) vs ONNX Runtime (timings: bench/triton_configs.py conv)."""
import logging

import numpy as np
import pytest
import torch

import tensorforge as tf
from tensorforge.kernels.triton import conv
from tensorforge.testing import run_ort
from tests.gpu import sweep
from tests.kernels import cases
from tests.kernels.test_triton_conv import _layer, _ref, _relu, check_cases, force_conv

CL = torch.channels_last


def _tile(cfg):
    return cfg[0] * cfg[1] * cfg[2]  # BLOCK_M x BLOCK_N x BLOCK_K


def _params(cfg):
    bm, bn, bk, nw, ns = cfg
    return {"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "num_warps": nw, "num_stages": ns}


@pytest.mark.fast(cfg=conv.LEVEL3[0])
@pytest.mark.parametrize("cfg", sweep.levels(conv.LEVEL3, conv.LEVEL4, _tile), ids=sweep.ident)
def test_every_config_fp16_odd_sizes(cfg):
    check_cases("cuda", torch.float16, _params(cfg), n=3, cin=40, cout=72, hw=(13, 11))


@pytest.mark.parametrize("cfg", sweep.levels(conv.LEVEL3, size=_tile), ids=sweep.ident)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_default_configs_even_k(cfg, dtype):
    check_cases("cuda", dtype, _params(cfg), n=2, cin=64, cout=136, hw=(15, 17))


@pytest.mark.parametrize("cfg", conv.LEVEL3[:1] + conv.LEVEL4[:1], ids=sweep.ident)
def test_every_config_bf16(cfg):
    check_cases("cuda", torch.bfloat16, _params(cfg), n=3, cin=40, cout=72, hw=(13, 11))


def test_large_batch_resnet_block_shapes():
    """A ResNet bottleneck conv at batch 32 (M ~ 100k rows), residual + relu, NHWC in and out."""
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(32, 64, 56, 56, device="cuda", generator=g).half().contiguous(memory_format=CL)
    w = (torch.randn(256, 64, 1, 1, device="cuda", generator=g) * 0.1).half()
    b = torch.randn(256, device="cuda", generator=g).half()
    res = torch.randn(32, 256, 56, 56, device="cuda", generator=g).half().contiguous(memory_format=CL)
    attrs = {"epilogue": cases.residual_relu_expr()}
    got = conv.ConvRunner(attrs, _params(conv.LEVEL3[0]), None)([x, w, b, res])[0]
    torch.testing.assert_close(got.float(), _ref(attrs, [x, w, b, res]).float(), rtol=1e-2, atol=1e-2)


@pytest.mark.fast
def test_offered_through_the_triton_source():
    from tensorforge import kernels
    ts = kernels.candidates(*_layer(epilogue=_relu()), torch.device("cuda"))
    assert any(t["source"] == "triton" and t["name"] == "conv_igemm" for t in ts)


def _check_fp16(eng, model, feed):
    got = eng.create_execution_context().infer(feed)
    for k, r in run_ort(model, feed).items():
        g = got[k].float().cpu().numpy().astype(np.float64)
        cos = float(g.ravel() @ r.ravel() / (np.linalg.norm(g) * np.linalg.norm(r)))
        assert cos >= 0.999, (k, cos)
        np.testing.assert_allclose(g, r, rtol=3e-2, atol=3e-2 * max(1.0, float(np.abs(r).max())), err_msg=k)


@pytest.mark.parametrize("cfg", sweep.levels(conv.LEVEL3, size=_tile), ids=sweep.ident)
def test_resnet50_small_fp16_with_conv_igemm_forced(monkeypatch, cfg):
    from tensorforge import zoo
    force_conv(monkeypatch, cfg)
    model, feed = zoo.get_model("resnet50_small"), zoo.random_inputs("resnet50_small", 4, seed=1)
    eng = tf.Builder(tf.BuilderConfig(device="cuda", fp16=True, opt_level=0)).build(model)
    convs = [lay for lay in eng.plan.layers if lay.type in conv.CONV_TYPES]
    forced = [lay for lay in convs if lay.tactic.get("name") == "conv_igemm"]
    assert len(forced) == len(convs) - 1  # all but the 3-channel stem
    assert any(lay.tactic["params"].get("in_nhwc") for lay in forced)
    _check_fp16(eng, model, feed)


def test_resnet50_small_fp16_timed_selection(caplog):
    from tensorforge import zoo
    model, feed = zoo.get_model("resnet50_small"), zoo.random_inputs("resnet50_small", 8, seed=2)
    with caplog.at_level(logging.WARNING, logger="tensorforge"):
        eng = tf.Builder(tf.BuilderConfig(device="cuda", fp16=True)).build(model)
    assert not [r for r in caplog.records if "conv_igemm" in r.getMessage()]  # none failed / mismatched
    _check_fp16(eng, model, feed)
