"""Triton implicit-GEMM conv (tactic conv_igemm): legality and configs (anywhere), generated
source, and correctness in triton's CPU interpreter on tiny shapes (fp32 and fp16: the
interpreter has no bf16 dot). tests/gpu/test_triton_conv.py runs `check_cases` compiled."""
import ast

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from tensorforge import kernels
from tensorforge.kernels import LayerShapes
from tensorforge.kernels.triton import conv
from tensorforge.kernels.triton.conv_source import ConvSignature, conv_source
from tensorforge.ops import registry
from tensorforge.runtime.plan import LayerSpec
from tests.kernels import cases, kernel_checks

CL = torch.channels_last
CUDA = torch.device("cuda")
TOL = {torch.float32: (1e-4, 1e-4), torch.float16: (1e-2, 1e-2), torch.bfloat16: (3e-2, 3e-2)}
interpreter = cases.interpreter_only


def _rand(shape, dtype, device, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return ((torch.rand(shape, generator=g) * 2 - 1) * scale).to(dtype).to(device)


def _ref(attrs, inputs):
    return registry.get("fused.ConvAct").run(inputs, attrs, 17)[0]


def conv_cases(device, dtype, n=2, cin=16, cout=24, hw=(7, 9)):
    """(name, attrs, inputs) covering windows, strides, pads, dilation, layouts and epilogues."""
    x = _rand((n, cin, *hw), dtype, device, 0)
    w3 = _rand((cout, cin, 3, 3), dtype, device, 1, 0.25)
    w1 = _rand((cout, cin, 1, 1), dtype, device, 2, 0.5)
    b = _rand((cout,), dtype, device, 3)
    relu = cases.residual_relu_expr()
    yield "3x3 s1 p1 relu", {"pads": [1, 1, 1, 1], "epilogue": _relu()}, [x, w3, b]
    yield "3x3 s2 asym nhwc", {"strides": [2, 2], "pads": [0, 1, 1, 0]}, [x.contiguous(memory_format=CL), w3, b]
    w3_cl = w3.contiguous(memory_format=CL)
    yield "3x3 dil2 nobias", {"dilations": [2, 2], "pads": [2, 1, 2, 1]}, [x, w3_cl, None]
    yield "3x3 same_upper s2", {"auto_pad": "SAME_UPPER", "strides": [2, 2]}, [x, w3, b]
    yh, yw = hw
    res = _rand((n, cout, yh, yw), dtype, device, 4)
    yield "1x1 residual relu", {"epilogue": relu}, [x, w1, b, res]
    x_cl, res_cl = x.contiguous(memory_format=CL), res.contiguous(memory_format=CL)
    yield "1x1 nhwc residual nhwc", {"epilogue": relu}, [x_cl, w1, b, res_cl]
    res2 = _rand((n, cout, (yh + 1) // 2, (yw + 1) // 2), dtype, device, 5)
    yield "1x1 s2 residual", {"strides": [2, 2], "epilogue": relu}, [x, w1, b, res2]
    wide = _rand((n, 2 * cin, *hw), dtype, device, 6).contiguous(memory_format=CL)
    yield "strided view input", {"pads": [1, 0, 0, 1]}, [wide[:, 1::2], w3, b]
    scale = _rand((cout, 1, 1), dtype, device, 7)
    yield "broadcast extra", {"pads": [1, 1, 1, 1], "epilogue": _mul_relu()}, [x, w3, b, scale]


def _relu():
    return {"nodes": [{"op": "input", "i": 0}, {"op": "Relu", "args": [0]}], "out": 1}


def _mul_relu():
    return {"nodes": [{"op": "input", "i": 0}, {"op": "input", "i": 1}, {"op": "Mul", "args": [0, 1]},
                      {"op": "Relu", "args": [2]}], "out": 3}


def _close(got, want, dtype, name):
    assert got.dtype == want.dtype and tuple(got.shape) == tuple(want.shape), (name, got.dtype, got.shape)
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(got.float().cpu(), want.float().cpu(), rtol=rtol, atol=atol, msg=name)


def check_cases(device, dtype, params, **sizes):
    """Every case through a ConvRunner with `params` vs the fused.ConvAct reference."""
    kernel_checks.check_nhwc_runner(conv_cases(device, dtype, **sizes), lambda a: conv.ConvRunner(a, params, None),
                                    lambda name, got, a, ins: _close(got, _ref(a, ins), dtype, name))


# ---- legality and configs (no triton needed) ----------------------------------------------------
def _layer(typ="fused.ConvAct", dt="float16", x=(4, 64, 14, 14), w=(128, 64, 3, 3), wkind="weight", extras=(),
           out=None, **attrs):
    attrs.setdefault("pads", [1, 1, 1, 1])
    ins = [{"dtype": dt, "shape": list(x), "kind": "activation"},
           {"dtype": dt, "shape": list(w), "kind": wkind}, {"dtype": dt, "shape": [w[0]], "kind": "weight"}]
    ins += [{"dtype": dt, "shape": list(s), "kind": "activation"} for s in extras]
    lay = LayerSpec("c", typ, [f"i{k}" for k in range(len(ins))], ["y"], attrs=attrs)
    return lay, LayerShapes.of(ins, [{"dtype": dt, "shape": list(out or (x[0], w[0], *x[2:]))}])


def test_candidates_for_legal_conv():
    ts = conv.conv_candidates(*_layer(epilogue=cases.residual_relu_expr(), extras=[(4, 128, 14, 14)]), CUDA)
    default = [t for t in ts if "level" not in t]
    assert 1 <= len(default) <= 6 and len(ts) > len(default)
    assert all(t["level"] == 4 for t in ts if "level" in t)
    for t in ts:
        p = t["params"]
        assert t["source"] == "triton" and t["name"] == "conv_igemm"
        assert p["weight_layout"] == "channels_last" and p["nhwc_ok"] is True
        assert all(p[k] % 16 == 0 for k in ("BLOCK_M", "BLOCK_N", "BLOCK_K"))
    assert conv.conv_candidates(*_layer(typ="Conv", dt="bfloat16"), CUDA)


@pytest.mark.parametrize("change", [
    {"dt": "float32"}, {"group": 2}, {"x": (4, 3, 14, 14), "w": (128, 3, 3, 3)}, {"w": (12, 64, 3, 3)},
    {"transpose": 1}, {"wkind": "activation"}, {"x": (4, 64, 14), "w": (128, 64, 3)},
    {"epilogue": cases.residual_relu_expr(), "extras": [(2, 4, 128, 14, 14)]},
    {"epilogue": cases.residual_relu_expr(), "extras": [(4, 128, 1, 15)]}])
def test_no_candidates_for_other_convs(change):
    assert conv.conv_candidates(*_layer(**change), CUDA) == []


def test_no_candidates_off_cuda_or_without_shapes():
    assert conv.conv_candidates(*_layer(), torch.device("cpu")) == []
    lay, shapes = _layer()
    assert any(t["name"] == "conv_igemm" for t in kernels.candidates(lay, shapes, CUDA)) == cases.HAS_TRITON
    assert not any(t["name"] == "conv_igemm" for t in kernels.candidates(lay, None, CUDA))


def test_configs_fit_the_gemm():
    small = conv.configs(cin=8, cout=16, m=60)
    assert all(bk == 16 and bn <= 64 and bm <= 64 for (bm, bn, bk, _, _), _ in small)
    big = conv.configs(cin=256, cout=1024, m=128 * 14 * 14)
    assert sum(lv == 3 for _, lv in big) == len(conv.LEVEL3) and len(set(c for c, _ in big)) == len(big)


@pytest.mark.parametrize("attrs", [{"pads": [0, 1, 2, 0], "strides": [2, 3]}, {"dilations": [2, 1]},
                                   {"auto_pad": "SAME_LOWER", "strides": [2, 2]}, {"auto_pad": "VALID"}])
def test_geometry_matches_reference_shape(attrs):
    x, w = torch.rand(1, 8, 11, 10), torch.rand(8, 8, 3, 2)
    assert conv.geometry(attrs, tuple(x.shape), tuple(w.shape))[3] == tuple(_ref(attrs, [x, w]).shape[2:])


def test_generated_source_parses():
    window = ConvSignature("float16", "float16", "float16", ("float16",), '{"nodes": [{"op": "input", "i": 0}, '
                           '{"op": "input", "i": 1}, {"op": "Add", "args": [0, 1]}], "out": 2}', (3, 3), (2, 2),
                           (1, 0), (1, 1))
    point = ConvSignature("float32", "float32", None, (), "", (1, 1), (1, 1), (0, 0), (1, 1))
    for sig in (window, point):
        src, consts = conv_source(sig)
        ast.parse(src)
        assert consts == [] and "tl.dot(" in src and ("ieee" in src) == (sig.dtype == "float32")
    assert "ih0" in conv_source(window)[0] and "ih0" not in conv_source(point)[0]


# ---- interpreter correctness ----------------------------------------------------------------
@interpreter
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_conv_cases_in_interpreter(interpret, dtype):
    check_cases("cpu", dtype, {"BLOCK_M": 64, "BLOCK_N": 16, "BLOCK_K": 16})


@interpreter
def test_uneven_k_and_tiles_in_interpreter(interpret):
    """Cin=8 < BLOCK_K (masked channels), Cout not a multiple of BLOCK_N, M not of BLOCK_M."""
    attrs = {"pads": [1, 1, 1, 1], "epilogue": _relu()}
    ins = [_rand((1, 8, 5, 7), torch.float16, "cpu", 10), _rand((40, 8, 3, 3), torch.float16, "cpu", 11), None]
    got = conv.ConvRunner(attrs, {"BLOCK_M": 16, "BLOCK_N": 32, "BLOCK_K": 32}, None)(ins)[0]
    _close(got, _ref(attrs, ins), torch.float16, "uneven")


@interpreter
def test_output_buffers_and_fallback(interpret):
    x, w = _rand((2, 8, 4, 5), torch.float32, "cpu", 12), _rand((16, 8, 1, 1), torch.float32, "cpu", 13)
    r = conv.ConvRunner({}, {"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 16}, None)
    cl = torch.empty(2, 16, 4, 5).contiguous(memory_format=CL)
    assert r([x, w], [cl])[0] is cl
    nchw = torch.empty(2, 16, 4, 5)
    got = r([x, w], [nchw])[0]
    assert got is not nchw and got.is_contiguous(memory_format=CL)
    _close(got, _ref({}, [x, w]), torch.float32, "1x1")
    g2 = conv.ConvRunner({"group": 2}, {}, lambda ins: [_ref({"group": 2}, ins)])
    w2 = _rand((16, 4, 1, 1), torch.float32, "cpu", 14)
    _close(g2([x, w2])[0], _ref({"group": 2}, [x, w2]), torch.float32, "group fallback")


def _tiny_resnet_block():
    """x -> conv3x3+relu -> conv3x3 (+x1) relu -> conv1x1 s2: fusion makes ConvAct layers."""
    rng = np.random.default_rng(0)
    shapes = {"w1": (16, 16, 3, 3), "b1": (16,), "w2": (16, 16, 3, 3), "b2": (16,), "w3": (32, 16, 1, 1)}
    init = [numpy_helper.from_array((rng.standard_normal(s) * 0.2).astype(np.float32), n)
            for n, s in shapes.items()]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c2", "r1"], ["a2"]), helper.make_node("Relu", ["a2"], ["r2"]),
             helper.make_node("Conv", ["r2", "w3"], ["y"], strides=[2, 2])]
    from tensorforge.testing import make_model
    return make_model(nodes, [("x", TensorProto.FLOAT, [2, 16, 7, 9])], [("y", TensorProto.FLOAT, None)], init)


def force_conv(monkeypatch, cfg):
    """Tactic selection offers conv_igemm(cfg) first for every legal conv layer."""
    from tensorforge.builder import tactics
    orig = tactics.Selector.candidates

    def forced(self, lay, info):
        ok = info is not None and conv.legal(lay, info)
        return ([conv.tactic(cfg)] if ok else []) + orig(self, lay, info)
    monkeypatch.setattr(tactics.Selector, "candidates", forced)


@interpreter
def test_fp16_engine_with_forced_conv_igemm(interpret, monkeypatch):
    """The runtime path: chosen tactic, channels-last weights, NHWC chains (in_nhwc / out_nhwc)."""
    import tensorforge as tf
    from tensorforge.testing import rand, run_ort
    force_conv(monkeypatch, (16, 16, 16, 4, 3))
    planned = []
    plan = conv.ConvRunner.plan
    monkeypatch.setattr(conv.ConvRunner, "plan", lambda s, ins: planned.append(plan(s, ins)) or planned[-1])
    model, feed = _tiny_resnet_block(), {"x": rand((2, 16, 7, 9), seed=3)}
    eng = tf.Builder(tf.BuilderConfig(device="cpu", fp16=True, opt_level=0)).build(model)
    chosen = [lay for lay in eng.plan.layers if lay.tactic.get("name") == "conv_igemm"]
    assert len(chosen) == 3 and any(lay.tactic["params"].get("out_nhwc") for lay in chosen)
    got = eng.create_execution_context().infer(feed)["y"].float().numpy()
    np.testing.assert_allclose(got, run_ort(model, feed)["y"], rtol=2e-2, atol=2e-2)
    assert len(planned) == 3 and all(p is not None for p in planned)  # kernels ran, no reference fallback
