"""Triton "qconv" family (fused.QConv as an 8-bit implicit GEMM: conv_source's quantized mode):
legality and configs (anywhere), generated source, and the kernel in Triton's CPU interpreter against
fused.QConv's reference on odd shapes, int8 and float8 e4m3 (the interpreter runs both dots);
an engine with the tactic forced vs ONNX Runtime. tests/gpu/test_triton_qconv.py runs `check_cases`
compiled."""
import ast

import numpy as np
import pytest
import torch

from tensorforge.kernels import LayerShapes
from tensorforge.kernels.triton import qconv
from tensorforge.kernels.triton.conv_source import ConvSignature, conv_source
from tensorforge.ops import registry
from tensorforge.ops.fused.expr import ExprBuilder
from tensorforge.runtime.plan import LayerSpec
from tests.kernels import cases, kernel_checks
from tests.kernels import qgemm_cases as qc

CL = torch.channels_last
CUDA = torch.device("cuda")
F8 = qc.F8
QT = {F8: torch.float8_e4m3fn, "int8": torch.int8}
SMALL = {"BLOCK_M": 32, "BLOCK_N": 16, "BLOCK_K": 32, "num_warps": 4, "num_stages": 2}


def _q(shape, qtype, seed, scale=40.0):
    """Random never-zero values of qtype (int8: integers up to 127; e4m3: up to ~16)."""
    g = torch.Generator().manual_seed(seed)
    t = (torch.randn(shape, generator=g) * scale).round().clamp(-127, 127)
    t = torch.where(t == 0, torch.ones_like(t), t)
    return (t / 8).to(QT[qtype]) if qtype == F8 else t.to(torch.int8)


def _rand(shape, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g) * scale


def folded_q_expr(qtype, scale=0.05):
    """relu(y), then the output Q as the passes fold it into the epilogue: Cast, Div, Round / Clip, Cast."""
    from tensorforge import dtypes
    b = ExprBuilder()
    y = b.op("Div", [b.op("Cast", [b.op("Relu", [b.input(0)])], {"to": 1}), b.const(scale, "float32")])
    if qtype == F8:
        y = b.op("Clip", [y], {"min": -448.0, "max": 448.0})
    else:
        y = b.op("Clip", [b.op("Round", [y])], {"min": -128.0, "max": 127.0})
    return b.build(b.op("Cast", [y], {"to": dtypes.to_onnx(qtype)}))


def _fit_out_q(attrs, ins, qtype, zp=0):
    """The output Q's scale fitted to the layer's output range (a few values saturate)."""
    y = registry.get("fused.QConv").run(ins, attrs, 17)[0].float()
    top = {F8: 300.0, "int8": 100.0, "uint8": 100.0}[qtype]
    attrs["out_q"] = [float(y.abs().amax()) / top, zp, qtype]
    return attrs


def qconv_cases(device, qtype, n=2, cin=20, cout=24, hw=(9, 7)):
    """(name, attrs, inputs): windows 1x1 / 3x3 / 7x7, strides, pads, NCHW and NHWC inputs, per-channel and
    per-tensor scales, bias, ReLU, float and quantized residuals, output Q (attr and folded)."""
    x = _q((n, cin, *hw), qtype, 0)
    xc = x.contiguous(memory_format=CL)
    w1, w3, w7 = _q((cout, cin, 1, 1), qtype, 1), _q((cout, cin, 3, 3), qtype, 2), _q((cout, cin, 7, 7), qtype, 3)
    ws = torch.rand(cout, generator=torch.Generator().manual_seed(4)) * 0.01 + 0.002
    ws1, b = torch.tensor(0.004), _rand((cout,), 5)
    base = {"x_scale": 0.02, "x_zp": 0, "w_zp": 0, "out_dtype": "float16"}
    relu = {"nodes": [{"op": "input", "i": 0}, {"op": "Relu", "args": [0]}], "out": 1}
    s2p1 = {"strides": [2, 2], "pads": [1, 1, 1, 1]}
    out = [("3x3 s2 p1 per-channel bias relu", {**base, **s2p1, "epilogue": relu}, [xc, w3, b, ws]),
           ("1x1 point per-tensor no bias fp32", {**base, "out_dtype": "float32"}, [x, w1, None, ws1]),
           ("7x7 s2 p3 out_q", {**base, "strides": [2, 2], "pads": [3, 3, 3, 3]}, [xc, w7, b, ws]),
           ("3x3 dil2 asym pads nchw", {**base, "dilations": [2, 2], "pads": [2, 1, 0, 1]}, [x, w3, b, ws1]),
           ("3x3 folded output Q", {**base, "pads": [1, 1, 1, 1], "epilogue": folded_q_expr(qtype)}, [xc, w3, b, ws])]
    res = _rand((n, cout, *hw), 6).half().contiguous(memory_format=CL)
    out.append(("1x1 residual relu out_q", {**base, "epilogue": cases.residual_relu_expr()}, [xc, w1, b, ws, res]))
    rq = _q((n, cout, *hw), qtype, 7, 20.0).contiguous(memory_format=CL)
    out.append(("1x1 quantized residual", {**base, "epilogue": cases.residual_relu_expr(),
                                           "extra_q": [[0.05, 0, qtype]]}, [xc, w1, b, ws, rq]))
    res2 = _rand((n, cout, (hw[0] + 1) // 2, (hw[1] + 1) // 2), 8).half()
    out.append(("1x1 s2 residual nchw", {**base, "strides": [2, 2], "epilogue": cases.residual_relu_expr()},
                [x, w1, b, ws, res2]))
    for name, attrs, ins in out:
        if "out_q" in name:
            _fit_out_q(attrs, ins, qtype)
        yield name, attrs, [None if t is None else t.to(device) for t in ins]
    if qtype == "int8":  # an asymmetric uint8 output Q
        attrs = _fit_out_q({**base, **s2p1}, [x, w3, b, ws], "uint8", zp=128)
        yield "3x3 uint8 out_q", attrs, [t.to(device) for t in (x, w3, b, ws)]


def check_cases(device, qtype, params, **sizes):
    """Every case through a QConvRunner with `params` (never its fallback) vs the fused.QConv reference."""
    def check(name, got, attrs, ins):
        want = registry.get("fused.QConv").run([None if t is None else t.cpu() for t in ins], attrs, 17)[0]
        try:
            qc.check(got, want, 2e-3)
        except AssertionError as e:
            raise AssertionError(f"{name}: {e}") from e
    kernel_checks.check_nhwc_runner(qconv_cases(device, qtype, **sizes), lambda a: qconv.QConvRunner(a, params, None),
                                    check)


@cases.interpreter_only
@pytest.mark.parametrize("qtype", ["int8", F8])
def test_qconv_cases_in_interpreter(interpret, qtype):
    check_cases("cpu", qtype, SMALL)


@cases.interpreter_only
def test_uneven_channels_and_tiles_in_interpreter(interpret):
    """Cin=12 < BLOCK_K (masked channels), Cout=40 not a multiple of BLOCK_N, M not of BLOCK_M."""
    check_cases("cpu", "int8", {"BLOCK_M": 16, "BLOCK_N": 32, "BLOCK_K": 32}, n=1, cin=12, cout=40, hw=(5, 7))


@cases.interpreter_only
def test_three_channel_stem_in_interpreter(interpret):
    """Cin=3 (an image network's stem: 7x7 s2 p3 among the cases): 3 valid channels of each K block."""
    check_cases("cpu", "int8", SMALL, n=1, cin=3, cout=16, hw=(9, 7))


def test_candidates_for_the_stem():
    assert qconv.qconv_candidates(*_layer(x=(4, 3, 14, 14), w=(128, 3, 7, 7), pads=[3, 3, 3, 3]), CUDA)


# ---- legality, configs, source (no triton needed) ---------------------------------------------
def _layer(qtype="int8", x=(4, 64, 14, 14), w=(128, 64, 3, 3), wkind="weight", ws=(128,), extras=(), **attrs):
    attrs = {"x_scale": 0.02, "x_zp": 0, "w_zp": 0, "out_dtype": "float16", "pads": [1, 1, 1, 1], **attrs}
    ins = [{"dtype": qtype, "shape": list(x), "kind": "activation"}, {"dtype": qtype, "shape": list(w), "kind": wkind},
           {"dtype": "float32", "shape": [w[0]], "kind": "weight"}, {"dtype": "float32", "shape": list(ws),
                                                                     "kind": "weight"}]
    ins += [{"dtype": "float16", "shape": list(s), "kind": "activation"} for s in extras]
    lay = LayerSpec("q", "fused.QConv", [f"i{k}" for k in range(len(ins))], ["y"], attrs=attrs)
    return lay, LayerShapes.of(ins, [{"dtype": "float16", "shape": [x[0], w[0], *x[2:]]}])


def test_candidates_for_legal_qconv():
    for qtype in ("int8", F8):
        ts = qconv.qconv_candidates(*_layer(qtype, epilogue=cases.residual_relu_expr(), extras=[(4, 128, 14, 14)]),
                                    CUDA)
        default = [t for t in ts if "level" not in t]
        assert 1 <= len(default) <= 4 and len(ts) > len(default), ts
        for t in ts:
            p = t["params"]
            assert t["source"] == "triton" and t["name"] == "qconv" and p["BLOCK_K"] >= 32
            assert p["weight_layout"] == "channels_last" and p["nhwc_ok"] is True
    assert qconv.qconv_candidates(*_layer(ws=(1,)), CUDA)


@pytest.mark.parametrize("change", [
    {"qtype": "uint8"}, {"qtype": "float16"}, {"x_zp": 3}, {"group": 2},
    {"wkind": "activation"}, {"ws": (64,)}, {"out_dtype": "int8"},
    {"epilogue": cases.residual_relu_expr(), "extras": [(2, 4, 128, 14, 14)]}])
def test_no_candidates_for_other_qconvs(change):
    assert qconv.qconv_candidates(*_layer(**change), CUDA) == []


def test_no_candidates_off_cuda():
    assert qconv.qconv_candidates(*_layer(), torch.device("cpu")) == []


def test_configs_fit_the_gemm():
    small = qconv.qconv_configs(cin=16, cout=24, m=60)
    assert all(bk == 32 and bn <= 64 and bm <= 64 for (bm, bn, bk, _, _), _ in small)
    big = qconv.qconv_configs(cin=256, cout=1024, m=128 * 14 * 14)
    assert sum(lv == 3 for _, lv in big) == len(qconv.LEVEL3) and len(set(c for c, _ in big)) == len(big)


def test_generated_sources():
    epi = '{"nodes": [{"op": "input", "i": 0}, {"op": "input", "i": 1}, {"op": "Add", "args": [0, 1]}], "out": 2}'
    i8 = ConvSignature("float16", "int8", "float32", ("int8",), epi, (3, 3), (2, 2), (1, 1), (1, 1), qtype="int8",
                       per_channel=True, extra_q=(True,), out_q=True)
    f8 = ConvSignature("float32", "float32", None, (), "", (1, 1), (1, 1), (0, 0), (1, 1), qtype=F8)
    src8, _ = conv_source(i8, "tf_qconv")
    srcf, _ = conv_source(f8, "tf_qconv")
    for s in (src8, srcf):
        ast.parse(s)
    assert "out_dtype=tl.int32" in src8 and "dtype=tl.int32)" in src8 and "e0z" in src8 and "oqs" in src8
    assert "tl.load(ws + rn" in src8 and "_rint(tl.div_rn(" in src8 and ".to(tl.float16).to(tl.float32)" in src8
    assert "out_dtype=tl.int32" not in srcf and "ieee" not in srcf and "tl.load(ws)" in srcf and "oqs" not in srcf


# ---- an engine: the tactic forced, NHWC chains, vs ONNX Runtime --------------------------------
def resnet_block(c=32, batch=2, hw=(7, 9)):
    """x -> conv3x3+relu -> conv3x3 (+x) relu -> conv1x1 s2 (32 channels: FP8 placement quantizes them)."""
    from onnx import TensorProto, helper, numpy_helper

    from tensorforge.testing import make_model
    rng = np.random.default_rng(0)
    shapes = {"w1": (c, c, 3, 3), "b1": (c,), "w2": (c, c, 3, 3), "b2": (c,), "w3": (2 * c, c, 1, 1)}
    init = [numpy_helper.from_array((rng.standard_normal(s) * 0.15).astype(np.float32), n) for n, s in shapes.items()]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c2", "r1"], ["a2"]), helper.make_node("Relu", ["a2"], ["r2"]),
             helper.make_node("Conv", ["r2", "w3"], ["y"], strides=[2, 2])]
    return make_model(nodes, [("x", TensorProto.FLOAT, [batch, c, *hw])], [("y", TensorProto.FLOAT, None)], init)


def quantized_block(mode, batch=2):
    """resnet_block quantized by tensorforge's quantizer (max calibration on random data), and a feed."""
    from tensorforge.quant import quantize
    from tensorforge.testing import rand
    feeds = [{"x": rand((batch, 32, 7, 9), seed=s)} for s in range(2)]
    return quantize(resnet_block(batch=batch), mode, feeds, "max"), {"x": rand((batch, 32, 7, 9), seed=5)}


def force_qconv(monkeypatch, cfg):
    """Tactic selection offers only qconv(cfg) for every legal QConv layer (chosen without timing)."""
    from tensorforge.builder import tactics
    orig = tactics.Selector.candidates

    def forced(self, lay, info):
        return [qconv.tactic(cfg)] if info is not None and qconv.legal(lay, info) else orig(self, lay, info)
    monkeypatch.setattr(tactics.Selector, "candidates", forced)


@cases.interpreter_only
@pytest.mark.parametrize("mode", ["int8", "fp8"])
def test_engine_with_forced_qconv(interpret, monkeypatch, mode):
    """The runtime path: chosen tactic, channels-last weights, 8-bit NHWC chains between the layers."""
    import tensorforge as tf
    from tensorforge.testing import run_ort
    force_qconv(monkeypatch, (32, 16, 32, 4, 2))
    planned = []
    plan = qconv.QConvRunner.plan
    monkeypatch.setattr(qconv.QConvRunner, "plan", lambda s, ins: planned.append(plan(s, ins)) or planned[-1])
    model, feed = quantized_block(mode)
    eng = tf.Builder(tf.BuilderConfig(device="cpu", opt_level=0)).build(model)
    chosen = [lay for lay in eng.plan.layers if lay.tactic.get("name") == "qconv"]
    assert len(chosen) == 3, [(lay.type, lay.tactic) for lay in eng.plan.layers]
    assert any(lay.tactic["params"].get("in_nhwc") and lay.tactic["params"].get("out_nhwc") for lay in chosen)
    got = eng.create_execution_context().infer(feed)["y"].float().numpy()
    want = run_ort(model, feed, basic=True)["y"]
    cos = float(got.ravel() @ want.ravel() / (np.linalg.norm(got) * np.linalg.norm(want)))
    assert cos > 0.995, cos
    assert len(planned) == 3 and all(p is not None for p in planned)  # kernels ran, no reference fallback


@cases.interpreter_only
@pytest.mark.parametrize("faster", [True, False])
def test_timed_against_the_fp16_form(interpret, monkeypatch, faster):
    """Level 3 (interpreted, a fake timer): every qconv config is checked against the reference on NHWC
    8-bit inputs, then kept only when it times faster than fp16_form (the no-regression rule)."""
    import tensorforge as tf
    from tensorforge.builder import tactics
    orig = tactics.Selector.candidates

    def offered(self, lay, info):  # what a CUDA build offers at level 3
        return orig(self, lay, info) + [t for t in qconv.qconv_candidates(lay, info, CUDA) if "level" not in t]
    monkeypatch.setattr(tactics.Selector, "candidates", offered)
    monkeypatch.setattr(tactics, "TIMER", lambda lay, t, b: {"qconv": 0.5 if faster else 2.0, "fp16_form": 1.0}
                        .get(t["name"], 3.0))
    model, _ = quantized_block("int8")
    eng = tf.Builder(tf.BuilderConfig(device="cpu", opt_level=3)).build(model)
    times = eng.plan.meta["quant_times"]
    tried = [v for t in times.values() for k, v in t.items() if k.startswith("triton:qconv")]
    assert tried and all(v is not None for v in tried), times  # every config matched the reference
    chosen = {lay.tactic["name"] for lay in eng.plan.layers if lay.type == "fused.QConv"}
    assert chosen == ({"qconv"} if faster else {"fp16_form"}), chosen



def stem_block(batch=2, hw=(15, 13)):
    """x (3 channels) -> conv 3x3 + relu -> MaxPool 3x3 s2 -> conv 3x3 (32 -> 32): a ResNet stem in small."""
    from onnx import TensorProto, helper, numpy_helper

    from tensorforge.testing import make_model
    rng = np.random.default_rng(1)
    shapes = {"w1": (32, 3, 3, 3), "b1": (32,), "w2": (32, 32, 3, 3)}
    init = [numpy_helper.from_array((rng.standard_normal(s) * 0.3).astype(np.float32), n) for n, s in shapes.items()]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["p1", "w2"], ["y"], pads=[1, 1, 1, 1])]
    return make_model(nodes, [("x", TensorProto.FLOAT, [batch, 3, *hw])], [("y", TensorProto.FLOAT, None)], init)


@cases.interpreter_only
def test_int8_stem_chain_stays_nhwc(interpret, monkeypatch):
    """The 3-channel stem stays FP16 with its output Q in the conv+epilogue tactic, which (nhwc_ok, as
    offered on CUDA) writes the int8 NHWC chain that MaxPool (int8) and the qconv read: no reformat
    layer, outputs vs ONNX Runtime's fake-quant run of the same model."""
    import tensorforge as tf
    from tensorforge.builder import tactics
    from tensorforge.kernels.triton.pool import pool_candidates
    from tensorforge.quant import quantize
    from tensorforge.testing import rand, run_ort
    orig = tactics.Selector.candidates

    def forced(self, lay, info):
        if lay.type == "fused.ConvAct":
            return [{"source": "triton", "name": "epilogue", "params": {"BLOCK": 1024, "num_warps": 4, "nhwc_ok": True,
                                                                         "weight_layout": "channels_last"}}]
        if lay.type == "MaxPool" and info is not None:
            return pool_candidates(lay, info, torch.device("cuda"))[:1]
        return [qconv.tactic((32, 16, 32, 4, 2))] if info is not None and qconv.legal(lay, info) else orig(self, lay, info)
    monkeypatch.setattr(tactics.Selector, "candidates", forced)
    model = quantize(stem_block(), "int8", [{"x": rand((2, 3, 15, 13), seed=s)} for s in range(2)], "max")
    feed = {"x": rand((2, 3, 15, 13), seed=5)}
    eng = tf.Builder(tf.BuilderConfig(device="cpu", opt_level=0)).build(model)
    by = {lay.type: lay for lay in eng.plan.layers}
    assert by["fused.ConvAct"].tactic["params"].get("out_nhwc") == [0], [(l.type, l.tactic) for l in eng.plan.layers]
    assert by["MaxPool"].tactic["params"].get("in_nhwc") and by["MaxPool"].precision == "int8"
    assert by["fused.QConv"].tactic["name"] == "qconv" and by["fused.QConv"].tactic["params"].get("in_nhwc")
    got = eng.create_execution_context().infer(feed)["y"].float().numpy()
    want = run_ort(model, feed, basic=True)["y"]
    cos = float(got.ravel() @ want.ravel() / (np.linalg.norm(got) * np.linalg.norm(want)))
    assert cos > 0.995, cos
