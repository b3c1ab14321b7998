"""Triton depthwise conv (tactic dwconv): legality and configs (anywhere), generated source, and
correctness in triton's CPU interpreter on small odd shapes against F.conv2d(groups=C) + the
epilogue. tests/gpu/test_triton_dwconv.py runs `check_cases` compiled."""
import ast

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

from tensorforge import kernels
from tensorforge.kernels import LayerShapes
from tensorforge.kernels.triton import dwconv
from tensorforge.kernels.triton.dwconv_source import DwSignature, dwconv_source
from tensorforge.ops import registry
from tensorforge.ops.fused.expr import ExprBuilder
from tensorforge.runtime.plan import LayerSpec
from tests.kernels import cases

CL = torch.channels_last
CUDA = torch.device("cuda")
TOL = {torch.float32: (1e-5, 1e-5), torch.float16: (1e-2, 1e-2), torch.bfloat16: (3e-2, 3e-2)}
interpreter = cases.interpreter_only


def _rand(shape, dtype, device, seed, scale=1.0):
    """Uniform in [-scale, scale) (never all zeros)."""
    g = torch.Generator().manual_seed(seed)
    return ((torch.rand(shape, generator=g) * 2 - 1) * scale).to(dtype).to(device)


def _expr(op, n_in=1, **attrs):
    """op(y) or op(y, extra1, ...)-style epilogues of one node over the inputs."""
    b = ExprBuilder()
    return b.build(b.op(op, [b.input(i) for i in range(n_in)], attrs or None))


def _silu():
    b = ExprBuilder()
    y = b.input(0)
    return b.build(b.op("Mul", [y, b.op("Sigmoid", [y])]))


def _bn_hardswish():
    """hardswish(y * scale + shift): a BN kept as per-channel extras, then the activation."""
    b = ExprBuilder()
    return b.build(b.op("HardSwish", [b.op("Add", [b.op("Mul", [b.input(0), b.input(1)]), b.input(2)])]))


def _residual_relu():
    b = ExprBuilder()
    return b.build(b.op("Relu", [b.op("Add", [b.input(0), b.input(1)])]))


def dw_cases(device, dtype):
    """(name, attrs, inputs, torch reference of the conv alone, epilogue fn) on odd shapes."""
    def conv(c, k, hw, n, seed, **attrs):
        x = _rand((n, c, *hw), dtype, device, seed)
        w = _rand((c, 1, k, k), dtype, device, seed + 1, 0.5)
        b = _rand((c,), dtype, device, seed + 2)
        return dict(attrs, group=c), x, w, b
    a, x, w, b = conv(20, 3, (9, 11), 1, 0, pads=[1, 1, 1, 1])
    yield "k3 s1 p1 n1 relu", dict(a, epilogue=_expr("Relu")), [x, w, b], (1, 1), F.relu
    a, x, w, b = conv(12, 5, (7, 10), 3, 10, pads=[2, 2, 2, 2], strides=[2, 2])
    yield "k5 s2 p2 n3 hardswish", dict(a, epilogue=_expr("HardSwish")), [x, w, b], (2, 2), F.hardswish
    a, x, w, b = conv(40, 3, (8, 13), 1, 20, strides=[2, 2])
    yield "k3 s2 p0 nhwc hardsigmoid", dict(a, epilogue=_expr("HardSigmoid", alpha=1 / 6, beta=0.5)), \
        [x.contiguous(memory_format=CL), w, b], (2, 2), lambda y: torch.clamp(y / 6 + 0.5, 0, 1)
    a, x, w, b = conv(24, 5, (6, 9), 3, 30, pads=[2, 2, 2, 2])
    yield "k5 s1 p2 n3 silu nobias", dict(a, epilogue=_silu()), [x, w, None], (1, 1), F.silu
    a, x, w, b = conv(9, 3, (10, 7), 1, 40, pads=[0, 1, 1, 0], strides=[2, 1])
    yield "k3 asym pads s(2,1)", a, [x, w, b], (2, 1), None
    a, x, w, b = conv(16, 3, (7, 7), 3, 50, auto_pad="SAME_UPPER", strides=[2, 2])
    s, t = _rand((16, 1, 1), dtype, device, 54), _rand((16, 1, 1), dtype, device, 55)
    yield "k3 same_upper bn hardswish", dict(a, epilogue=_bn_hardswish()), [x, w, b, s, t], (2, 2), \
        lambda y: F.hardswish(y * s + t)
    a, x, w, b = conv(33, 3, (5, 6), 1, 60, pads=[1, 1, 1, 1])
    r = _rand((1, 33, 5, 6), dtype, device, 63)
    yield "k3 residual relu", dict(a, epilogue=_residual_relu()), [x, w, b, r], (1, 1), lambda y: F.relu(y + r)


def _torch_ref(attrs, ins, stride, epi):
    """F.conv2d(groups=C) in fp64 (explicit pads), then the epilogue, cast to the input type."""
    x, w, b = ins[0], ins[1], ins[2]
    from tensorforge.kernels.triton.conv import geometry
    _, pads, _, _ = geometry(attrs, tuple(x.shape), tuple(w.shape))
    xp = F.pad(x.double(), (pads[1], pads[3], pads[0], pads[2]))
    y = F.conv2d(xp, w.double(), None if b is None else b.double(), stride=stride, groups=x.shape[1])
    y = y if epi is None else epi(y)
    return y.to(x.dtype)


def _close(got, want, dtype, name):
    assert got.dtype == want.dtype and tuple(got.shape) == tuple(want.shape), (name, got.dtype, got.shape)
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(got.float().cpu(), want.float().cpu(), rtol=rtol, atol=atol, msg=name)


def check_cases(device, dtype, params):
    """Every case through a DwConvRunner with `params` vs torch and vs the fused.ConvAct reference."""
    for name, attrs, ins, stride, epi in dw_cases(device, dtype):
        runner = dwconv.DwConvRunner(attrs, params, None)
        assert runner.plan(ins) is not None, name  # the kernel runs (no reference fallback)
        got = runner(ins)[0]
        assert got.is_contiguous(memory_format=CL), name
        # the ops reference in its own precision: fp32 on the CPU, fp16/bf16 on CUDA (cuDNN may run
        # fp32 as TF32; the CPU's fp16 conv rounds differently): the fp64 torch reference covers the rest
        if (device == "cpu") == (dtype == torch.float32):
            _close(got, registry.get("fused.ConvAct").run(ins, attrs, 17)[0], dtype, name)
        _close(got, _torch_ref(attrs, ins, stride, epi), dtype, name)


# ---- legality and configs (no triton needed) ----------------------------------------------------
def _layer(typ="fused.ConvAct", dt="float16", x=(1, 32, 40, 40), w=(32, 1, 3, 3), wkind="weight", extras=(),
           **attrs):
    attrs.setdefault("pads", [1, 1, 1, 1])
    attrs.setdefault("group", x[1])
    ins = [{"dtype": dt, "shape": list(x), "kind": "activation"},
           {"dtype": dt, "shape": list(w), "kind": wkind}, {"dtype": dt, "shape": [w[0]], "kind": "weight"}]
    ins += [{"dtype": dt, "shape": list(s), "kind": "activation"} for s in extras]
    lay = LayerSpec("dw", typ, [f"i{k}" for k in range(len(ins))], ["y"], attrs=attrs)
    return lay, LayerShapes.of(ins, [{"dtype": dt, "shape": [x[0], w[0], *x[2:]]}])


@pytest.mark.parametrize("change", [{}, {"typ": "Conv", "dt": "float32"}, {"strides": [2, 2], "dt": "bfloat16"},
                                    {"w": (32, 1, 5, 5), "pads": [2, 2, 2, 2], "epilogue": _expr("HardSwish")},
                                    {"pads": [0, 1, 1, 0]}, {"x": (3, 7, 9, 9), "w": (7, 1, 3, 3)}])
def test_candidates_for_depthwise_convs(change):
    ts = dwconv.dwconv_candidates(*_layer(**change), CUDA)
    default = [t for t in ts if "level" not in t]
    assert len(default) == 2 and 3 <= len(ts) <= 4 and all(t["level"] == 4 for t in ts if "level" in t)
    for t in ts:
        p = t["params"]
        assert t["source"] == "triton" and t["name"] == "dwconv" and p["nhwc_ok"] is True
        assert p["weight_layout"] == "channels_last"  # timed NHWC, starts a channels-last chain
        assert all(p[k] & (p[k] - 1) == 0 for k in ("BLOCK_H", "BLOCK_W", "BLOCK_C"))


@pytest.mark.parametrize("change", [
    {"dilations": [2, 2]}, {"group": 2, "w": (32, 16, 3, 3)}, {"group": 1, "w": (32, 32, 3, 3)},
    {"w": (64, 1, 3, 3)}, {"w": (32, 1, 9, 9), "pads": [4, 4, 4, 4]}, {"strides": [3, 3]}, {"dt": "int8"},
    {"dt": "float64"}, {"transpose": 1}, {"wkind": "activation"}, {"x": (1, 32, 40), "w": (32, 1, 3)},
    {"x": (1, 32, 2, 2), "pads": [0, 0, 0, 0]},
    {"epilogue": _residual_relu(), "extras": [(2, 1, 32, 40, 40)]},
    {"epilogue": _residual_relu(), "extras": [(1, 32, 1, 15)]}])
def test_no_candidates_for_other_convs(change):
    assert dwconv.dwconv_candidates(*_layer(**change), CUDA) == []


def test_no_candidates_off_cuda_or_without_shapes():
    assert dwconv.dwconv_candidates(*_layer(), torch.device("cpu")) == []
    lay, shapes = _layer()
    assert not any(t["name"] == "dwconv" for t in kernels.candidates(lay, shapes, torch.device("cpu")))
    assert any(t["name"] == "dwconv" for t in kernels.candidates(lay, shapes, CUDA)) == cases.HAS_TRITON
    assert not any(t["name"] == "dwconv" for t in kernels.candidates(lay, None, CUDA))


def test_configs_fit_the_channels():
    for c in (7, 16, 32, 64, 96, 512):
        got = dwconv.configs(c)
        assert [lv for _, lv in got][:2] == [3, 3] and len(set(cfg for cfg, _ in got)) == len(got)
        assert all(bc <= max(8, dwconv._np2(c)) and bh * bw * bc >= 1024 for (bh, bw, bc, _), _ in got)


def test_generated_source_parses():
    epi = '{"nodes": [{"op": "input", "i": 0}, {"op": "input", "i": 1}, {"op": "Add", "args": [0, 1]}], "out": 2}'
    full = DwSignature("float16", "float16", "float16", ("float16",), epi, (5, 5), (2, 2), (2, 2))
    bare = DwSignature("float32", "float32", None, (), "", (3, 3), (1, 1), (0, 0))
    for sig in (full, bare):
        src, consts = dwconv_source(sig)
        ast.parse(src)
        assert consts == [] and "tl.dot(" not in src and "static_range" in src
    assert "oh * 2 - 2" in dwconv_source(full)[0] and ("b + " in dwconv_source(bare)[0]) is False


# ---- interpreter correctness ----------------------------------------------------------------
@interpreter
@pytest.mark.parametrize("dtype, tile", [(torch.float32, (4, 4, 16)), (torch.float16, (4, 4, 16)),
                                         (torch.bfloat16, (2, 8, 32))])
def test_dwconv_cases_in_interpreter(interpret, dtype, tile):
    check_cases("cpu", dtype, dict(zip(("BLOCK_H", "BLOCK_W", "BLOCK_C"), tile)))


@interpreter
def test_output_buffer_and_fallback(interpret):
    x, w = _rand((1, 8, 5, 6), torch.float32, "cpu", 70), _rand((8, 1, 3, 3), torch.float32, "cpu", 71)
    attrs = {"group": 8, "pads": [1, 1, 1, 1]}
    want = registry.get("fused.ConvAct").run([x, w], attrs, 17)[0]
    r = dwconv.DwConvRunner(attrs, {"BLOCK_H": 2, "BLOCK_W": 8, "BLOCK_C": 8}, None)
    cl = torch.empty(1, 8, 5, 6).contiguous(memory_format=CL)
    assert r([x, w], [cl])[0] is cl  # written in place
    _close(cl, want, torch.float32, "in place")
    got = r([x, w], [torch.empty(1, 8, 5, 6)])[0]
    assert got.is_contiguous(memory_format=CL)
    _close(got, want, torch.float32, "fresh buffer")
    w.copy_(_rand((8, 1, 3, 3), torch.float32, "cpu", 72))  # a refit writes the weight in place
    _close(r([x, w])[0], registry.get("fused.ConvAct").run([x, w], attrs, 17)[0], torch.float32, "refit")
    dil = {"group": 8, "pads": [2, 2, 2, 2], "dilations": [2, 2]}
    r2 = dwconv.DwConvRunner(dil, {}, lambda ins: registry.get("fused.ConvAct").run(ins, dil, 17))
    assert r2.plan([x, w]) is None
    _close(r2([x, w])[0], F.conv2d(x, w, padding=2, dilation=2, groups=8), torch.float32, "dilation fallback")


def force_dwconv(monkeypatch, cfg) -> list:
    """Offer dwconv(cfg) first for every legal layer; returns the runners' launch plans (None: reference)."""
    from tensorforge.builder import tactics
    orig = tactics.Selector.candidates
    monkeypatch.setattr(tactics.Selector, "candidates", lambda self, lay, info: (
        [dwconv.tactic(cfg)] if info is not None and dwconv.legal(lay, info) else []) + orig(self, lay, info))
    planned: list = []
    plan = dwconv.DwConvRunner.plan
    monkeypatch.setattr(dwconv.DwConvRunner, "plan", lambda s, ins: planned.append(plan(s, ins)) or planned[-1])
    return planned


def _tiny_dw_block():
    """x -> dw3x3 s2 + bias -> hardswish -> dw5x5 -> relu -> 1x1 conv: fusion makes ConvAct layers."""
    rng = np.random.default_rng(0)
    shapes = {"w1": (16, 1, 3, 3), "b1": (16,), "w3": (16, 1, 5, 5), "w2": (24, 16, 1, 1)}
    init = [numpy_helper.from_array((rng.standard_normal(s) * 0.3).astype(np.float32), n) for n, s in shapes.items()]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2], group=16),
             helper.make_node("HardSwish", ["c1"], ["h1"]),
             helper.make_node("Conv", ["h1", "w3"], ["c3"], pads=[2, 2, 2, 2], group=16),
             helper.make_node("Relu", ["c3"], ["r3"]),
             helper.make_node("Conv", ["r3", "w2"], ["y"])]
    from tensorforge.testing import make_model
    return make_model(nodes, [("x", TensorProto.FLOAT, [2, 16, 9, 11])], [("y", TensorProto.FLOAT, None)], init)


@interpreter
def test_fp16_engine_with_forced_dwconv(interpret, monkeypatch):
    """The runtime path: chosen tactic, planned output buffers, NHWC chains (in_nhwc / out_nhwc)."""
    import tensorforge as tf
    from tensorforge.testing import rand, run_ort
    planned = force_dwconv(monkeypatch, (2, 8, 16, 4))
    model, feed = _tiny_dw_block(), {"x": rand((2, 16, 9, 11), seed=3)}
    eng = tf.Builder(tf.BuilderConfig(device="cpu", fp16=True, opt_level=0)).build(model)
    dw = [lay for lay in eng.plan.layers if lay.tactic.get("name") == "dwconv"]
    assert len(dw) == 2 and [lay.tactic["params"].get("out_nhwc") for lay in dw] == [[0], [0]]
    assert dw[1].tactic["params"].get("in_nhwc") == [0]  # an NHWC chain from dw to dw to the 1x1 conv
    got = eng.create_execution_context().infer(feed)["y"].float().numpy()
    np.testing.assert_allclose(got, run_ort(model, feed)["y"], rtol=2e-2, atol=2e-2)
    assert planned and all(p is not None for p in planned)  # the kernel ran, no reference fallback
