"""qconv (fused.QConv as an 8-bit implicit GEMM) compiled on CUDA: configs vs the fused.QConv reference
(int8 and float8 e4m3 on sm_89+; odd sizes, windows, strides, per-channel / per-tensor scales,
residuals, output Q), a ResNet bottleneck at batch 32, a CUDA graph replay, and zoo:resnet50_small
quantized (tensorforge's quantizer) built at opt level 3 with the tactic forced and with timed
selection, vs ONNX Runtime on the same Q/DQ model. Timings: bench/triton_configs.py qconv."""
import logging

import numpy as np
import pytest
import torch

import tensorforge as tf
from tensorforge.kernels.triton import qconv
from tensorforge.ops import registry
from tensorforge.testing import run_ort
from tests.gpu import sweep
from tests.kernels import cases
from tests.kernels import qgemm_cases as qc
from tests.kernels.test_triton_qconv import _q, check_cases, force_qconv

CL = torch.channels_last
FP8_OK = torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 9)
needs_fp8 = pytest.mark.skipif(not FP8_OK, reason="FP8 needs sm_89+")
QTYPES = ["int8", pytest.param(qc.F8, marks=needs_fp8)]


def _params(cfg):
    bm, bn, bk, nw, ns = cfg
    return {"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "num_warps": nw, "num_stages": ns}


def _tile(cfg):
    return cfg[0] * cfg[1] * cfg[2]


@pytest.mark.fast(cfg=qconv.LEVEL3[0], qtype="int8")
@pytest.mark.parametrize("qtype", QTYPES)
@pytest.mark.parametrize("cfg", sweep.levels(qconv.LEVEL3, qconv.LEVEL4, _tile), ids=sweep.ident)
def test_every_config_odd_sizes(cfg, qtype):
    """Cin 40 / Cout 72 (not multiples of 16 or of the tiles), K masked: every case of the interpreter test."""
    check_cases("cuda", qtype, _params(cfg), n=3, cin=40, cout=72, hw=(13, 11))


@pytest.mark.parametrize("qtype", QTYPES)
@pytest.mark.parametrize("cfg", sweep.levels(qconv.LEVEL3, size=_tile), ids=sweep.ident)
def test_default_configs_even_k(cfg, qtype):
    check_cases("cuda", qtype, _params(cfg), n=2, cin=128, cout=136, hw=(15, 17))


@pytest.mark.parametrize("qtype", QTYPES)
def test_large_batch_resnet_bottleneck(qtype):
    """1x1 64 -> 256 at batch 32, 56x56 (M ~ 100k rows): residual + relu + output Q, NHWC in and out."""
    x = _q((32, 64, 56, 56), qtype, 0).cuda().contiguous(memory_format=CL)
    w = _q((256, 64, 1, 1), qtype, 1).cuda()
    ws = (torch.rand(256, generator=torch.Generator().manual_seed(2)) * 0.01 + 0.002).cuda()
    b = torch.randn(256, generator=torch.Generator().manual_seed(3)).cuda()
    res = torch.randn(32, 256, 56, 56, device="cuda").half().contiguous(memory_format=CL)
    attrs = {"x_scale": 0.02, "x_zp": 0, "w_zp": 0, "out_dtype": "float16", "epilogue": cases.residual_relu_expr()}
    ref = registry.get("fused.QConv").run([t.cpu() for t in (x, w, b, ws, res)], attrs, 17)[0].float()
    attrs["out_q"] = [float(ref.abs().amax()) / (300.0 if qtype == qc.F8 else 100.0), 0, qtype]
    want = registry.get("fused.QConv").run([t.cpu() for t in (x, w, b, ws, res)], attrs, 17)[0]
    got = qconv.QConvRunner(attrs, _params(qconv.LEVEL3[0]), None)([x, w, b, ws, res])[0]
    qc.check(got, want)


def test_replays_in_a_cuda_graph():
    """The weight's channels-last copy is made before capture; replays equal the eager result."""
    x = _q((4, 48, 14, 14), "int8", 0).cuda().contiguous(memory_format=CL)
    w, ws = _q((64, 48, 3, 3), "int8", 1).cuda(), torch.full((64,), 0.003, device="cuda")
    attrs = {"x_scale": 0.02, "x_zp": 0, "w_zp": 0, "out_dtype": "float16", "pads": [1, 1, 1, 1]}
    run = qconv.QConvRunner(attrs, _params(qconv.LEVEL3[1]), None)
    first = run([x, w, None, ws])[0].clone()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        run([x, w, None, ws])
    s.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g, stream=s):
        out = run([x, w, None, ws])[0]
    for _ in range(2):
        g.replay()
        torch.cuda.synchronize()
        torch.testing.assert_close(out, first, rtol=0, atol=0)


def test_offered_through_the_triton_source():
    from tensorforge import kernels
    from tests.kernels.test_triton_qconv import _layer
    ts = kernels.candidates(*_layer(), torch.device("cuda"))
    names = {(t["source"], t["name"]) for t in ts}
    assert ("triton", "qconv") in names and ("aten", "fp16_form") in names


def _quantized_resnet(mode):
    from tensorforge import zoo
    from tensorforge.quant import quantize
    feeds = [zoo.random_inputs("resnet50_small", 2, seed=i) for i in range(2)]
    return quantize(zoo.get_model("resnet50_small"), mode, feeds, "max"), zoo.random_inputs("resnet50_small", 4, seed=9)


def _check_vs_ort(eng, model, feed, mode):
    got = eng.create_execution_context().infer(feed)
    for k, r in run_ort(model, feed, basic=mode == "fp8").items():
        g = got[k].float().cpu().numpy().astype(np.float64).ravel()
        cos = float(g @ r.ravel() / (np.linalg.norm(g) * np.linalg.norm(r)))
        assert cos > 0.99, (k, cos)


@pytest.mark.parametrize("mode", ["int8", pytest.param("fp8", marks=needs_fp8)])
def test_quantized_resnet50_small_with_qconv_forced(monkeypatch, mode):
    force_qconv(monkeypatch, qconv.LEVEL3[1])
    model, feed = _quantized_resnet(mode)
    eng = tf.Builder(tf.BuilderConfig(device="cuda", opt_level=3)).build(model)
    qconvs = [lay for lay in eng.plan.layers if lay.type == "fused.QConv"]
    forced = [lay for lay in qconvs if lay.tactic.get("name") == "qconv"]
    assert forced and len(forced) >= len(qconvs) - 1, [lay.tactic for lay in qconvs]  # all but the 3-channel stem
    if mode == "int8":  # 8-bit activations stay NHWC between the quantized convs
        assert any(lay.tactic["params"].get("in_nhwc") for lay in forced)
    _check_vs_ort(eng, model, feed, mode)


@pytest.mark.parametrize("mode", ["int8", pytest.param("fp8", marks=needs_fp8)])
def test_quantized_resnet50_small_timed_selection(caplog, mode):
    """Every qconv config offered at level 3 compiles and matches the reference (timed vs fp16_form)."""
    model, feed = _quantized_resnet(mode)
    with caplog.at_level(logging.WARNING, logger="tensorforge"):
        eng = tf.Builder(tf.BuilderConfig(device="cuda", opt_level=3)).build(model)
    assert not [r for r in caplog.records if "qconv" in r.getMessage()]  # none failed / mismatched
    times = eng.plan.meta.get("quant_times", {})
    tried = [v for t in times.values() for k, v in t.items() if k.startswith("triton:qconv")]
    assert tried and all(v is not None for v in tried), times
    _check_vs_ort(eng, model, feed, mode)
