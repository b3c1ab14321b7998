"""Triton squeeze-excitation (tactic se): legality and configs (anywhere), and correctness in triton's
CPU interpreter on odd shapes against the unfused chain run by ONNX Runtime and against the
fused.SqueezeExcite reference. tests/gpu/test_triton_se.py runs `check_cases` compiled."""
import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from tensorforge import kernels
from tensorforge.kernels import LayerShapes
from tensorforge.kernels.triton import se
from tensorforge.ops import registry
from tensorforge.runtime.plan import LayerSpec
from tensorforge.testing import make_model, run_ort
from tests.kernels import cases

CL = torch.channels_last
CUDA = torch.device("cuda")
TOL = {torch.float32: (1e-5, 1e-5), torch.float16: (1e-2, 1e-2), torch.bfloat16: (3e-2, 3e-2)}
interpreter = cases.interpreter_only


def _rand(shape, seed, scale=1.0, shift=0.0):
    """Uniform in [shift - scale, shift + scale) (never all zeros), float32 on the CPU."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) * 2 - 1) * scale + shift


def se_cases():
    """(name, attrs, fp32 inputs [x, w1, b1, w2, b2], channels_last) on odd shapes."""
    def mk(n, c, cr, hw, seed, bias2=True, flat=False):
        x = _rand((n, c, *hw), seed, 1.0) + _rand((1, c, 1, 1), seed + 1, 0.6)  # per-channel means differ
        w1 = _rand((cr, c) if flat else (cr, c, 1, 1), seed + 2, 2.0 / c ** 0.5)
        w2 = _rand((c, cr) if flat else (c, cr, 1, 1), seed + 3, 2.0 / cr ** 0.5)
        return [x, w1, _rand((cr,), seed + 4, 0.3), w2, _rand((c,), seed + 5, 0.5) if bias2 else None]
    hs = {"gate": "HardSigmoid", "alpha": 1 / 6, "beta": 0.5}
    yield "n1 c20 7x9 relu hardsigmoid", dict(hs, act1="Relu"), mk(1, 20, 5, (7, 9), 0), False
    yield "n3 c37 5x5 hardswish sigmoid nhwc", {"act1": "HardSwish", "gate": "Sigmoid"}, mk(3, 37, 9, (5, 5), 10), True
    yield "n3 c130 3x5 silu hs(0.2) no b2, 2-D weights", {"act1": "SiLU", "gate": "HardSigmoid", "alpha": 0.2,
                                                          "beta": 0.5}, mk(3, 130, 33, (3, 5), 20, False, True), False
    yield "n1 c72 1x1 no act nhwc", dict(hs, act1=""), mk(1, 72, 18, (1, 1), 30), True


def _onnx_chain(attrs, ins):
    """The unfused SE chain as an ONNX model (4-D weights) with its initializers."""
    x, w1, b1, w2, b2 = ins
    c, cr = x.shape[1], w1.shape[0]
    inits = {"w1": w1.reshape(cr, c, 1, 1), "b1": b1, "w2": w2.reshape(c, cr, 1, 1)}
    if b2 is not None:
        inits["b2"] = b2
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["p"]), helper.make_node("Conv", ["p", "w1", "b1"], ["c1"])]
    act = attrs.get("act1", "Relu")
    if act == "SiLU":
        nodes += [helper.make_node("Sigmoid", ["c1"], ["sg"]), helper.make_node("Mul", ["c1", "sg"], ["h"])]
    else:
        nodes.append(helper.make_node(act, ["c1"], ["h"]) if act else helper.make_node("Identity", ["c1"], ["h"]))
    nodes.append(helper.make_node("Conv", ["h", "w2"] + (["b2"] if b2 is not None else []), ["c2"]))
    ga = {"alpha": attrs["alpha"], "beta": attrs["beta"]} if attrs["gate"] == "HardSigmoid" else {}
    nodes += [helper.make_node(attrs["gate"], ["c2"], ["s"], **ga), helper.make_node("Mul", ["x", "s"], ["y"])]
    tensors = [numpy_helper.from_array(v.numpy().astype(np.float32), k) for k, v in inits.items()]
    return make_model(nodes, [("x", TensorProto.FLOAT, list(x.shape))], [("y", TensorProto.FLOAT, None)], tensors)


def _close(got, want, dtype, name):
    assert tuple(got.shape) == tuple(want.shape), (name, got.shape)
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(got.float().cpu(), want.float().cpu(), rtol=rtol, atol=atol, msg=name)


def check_cases(device, dtype, params):
    """Every case through an SERunner with `params` vs ONNX Runtime (the unfused chain, fp32, on the
    case's inputs as rounded to dtype) and vs the fused.SqueezeExcite reference."""
    for name, attrs, ins32, nhwc in se_cases():
        ins = [None if t is None else t.to(dtype) for t in ins32]
        ort = run_ort(_onnx_chain(attrs, [None if t is None else t.float() for t in ins]),
                      {"x": ins[0].float().numpy()})["y"]
        dev = [None if t is None else t.to(device) for t in ins]
        if nhwc:
            dev[0] = dev[0].contiguous(memory_format=CL)
        runner = se.SERunner(attrs, params, None)
        assert runner.plan(dev) is not None, name  # the kernels run (no reference fallback)
        got = runner(dev)[0]
        assert got.dtype == dtype and got.is_contiguous(memory_format=CL if nhwc else torch.contiguous_format), name
        _close(got, torch.from_numpy(ort), dtype, name)
        # the ops reference in its own precision where it is exact enough: fp32 on the CPU, fp16/bf16 on
        # CUDA (cuDNN may run fp32 1x1 convs as TF32; the CPU's fp16 conv rounds its own way)
        if (device == "cpu") == (dtype == torch.float32):
            _close(got, registry.get("fused.SqueezeExcite").run(dev, attrs, 17)[0], dtype, name)


# ---- legality and configs (no triton needed) ----------------------------------------------------
def _layer(dt="float16", x=(1, 64, 14, 14), cr=16, wkind="weight", **attrs):
    attrs = {"act1": "Relu", "gate": "HardSigmoid", **attrs}
    c = x[1]
    shp = [[cr, c, 1, 1], [cr], [c, cr, 1, 1], [c]]
    ins = [{"dtype": dt, "shape": list(x), "kind": "activation"}]
    ins += [{"dtype": dt, "shape": s, "kind": wkind} for s in shp]
    lay = LayerSpec("se", "fused.SqueezeExcite", [f"i{k}" for k in range(5)], ["y"], attrs=attrs)
    return lay, LayerShapes.of(ins, [{"dtype": dt, "shape": list(x)}])


@pytest.mark.parametrize("change", [{}, {"dt": "float32", "x": (3, 37, 5, 7), "cr": 9},
                                    {"act1": "SiLU", "gate": "Sigmoid", "dt": "bfloat16"},
                                    {"x": (8, 480, 56, 56), "cr": 120}])
def test_candidates_for_se_layers(change):
    ts = se.se_candidates(*_layer(**change), CUDA)
    assert 1 <= len([t for t in ts if "level" not in t]) <= 2 and all(t["level"] == 4 for t in ts if "level" in t)
    assert all(t["source"] == "triton" and t["name"] == "se" and t["params"]["nhwc_ok"] for t in ts)
    big = change.get("x", (1, 64, 14, 14))
    assert any(t["params"]["GATE"] == "split" for t in ts) == (big[1] * big[2] * big[3] >= 16384)
    assert (ts[0]["params"]["GATE"] == "split") == (big[1] * big[2] * big[3] >= 65536)


@pytest.mark.parametrize("change", [{"dt": "int8"}, {"dt": "float64"}, {"wkind": "activation"}, {"cr": 2048},
                                    {"act1": "Tanh"}, {"gate": "Relu"}, {"x": (1, 64, 14)}])
def test_no_candidates_for_other_layers(change):
    assert se.se_candidates(*_layer(**change), CUDA) == []


def test_pool_split_fills_the_gpu():
    assert se._pool_split(1, 96, 160 * 160) == (100, 256, 64, 64)  # PP-OCR det neck: 200 programs
    assert se._pool_split(8, 512, 49)[0] == 1  # small images: one range
    s, per, bp, _ = se._pool_split(1, 20, 63, 4)
    assert (s, per, bp) == (4, 16, 4) and (s - 1) * per < 63 <= s * per


def test_no_candidates_off_cuda_or_without_shapes():
    lay, shapes = _layer()
    assert se.se_candidates(lay, shapes, torch.device("cpu")) == []
    assert [t["name"] for t in kernels.candidates(lay, shapes, torch.device("cpu"))] == ["reference"]
    assert any(t["name"] == "se" for t in kernels.candidates(lay, shapes, CUDA)) == cases.HAS_TRITON
    assert kernels.candidates(lay, shapes, CUDA)[-1]["name"] == "reference"  # torch ops, timed against se


# ---- interpreter correctness ----------------------------------------------------------------
@interpreter
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("gate", ["fused", "split"])
def test_se_cases_in_interpreter(interpret, dtype, gate):
    check_cases("cpu", dtype, {"GATE": gate, "BLOCK_P": 8, "BLOCK_C": 16, "POOL_P": 4})  # split: S = 2..4


@interpreter
def test_output_buffer_and_fallback(interpret):
    name, attrs, ins, _ = next(iter(se_cases()))
    want = registry.get("fused.SqueezeExcite").run(ins, attrs, 17)[0]
    r = se.SERunner(attrs, {"GATE": "fused"}, None)
    buf = torch.empty_like(ins[0]).contiguous(memory_format=CL)  # an NHWC planned output: written in place
    assert r(ins, [buf])[0] is buf
    _close(buf, want, torch.float32, "in place")
    ins[1].mul_(0.5)  # a refit writes the weight in place: the next run reads it
    _close(r(ins)[0], registry.get("fused.SqueezeExcite").run(ins, attrs, 17)[0], torch.float32, "refit")
    odd = se.SERunner(attrs, {}, lambda i: ["fallback"])
    assert odd([ins[0].double()] + ins[1:]) == ["fallback"]  # float64: the reference runs


def force_se(monkeypatch, params) -> list:
    """Offer se(params) first for every legal layer; returns the runners' launch plans (None: reference)."""
    from tensorforge.builder import tactics
    from tensorforge.kernels.triton import tactic_dict
    orig = tactics.Selector.candidates
    t = tactic_dict("se", nhwc_ok=True, **params)
    monkeypatch.setattr(tactics.Selector, "candidates", lambda self, lay, info: (
        [t] if info is not None and se.legal(lay, info) else []) + orig(self, lay, info))
    planned: list = []
    plan = se.SERunner.plan
    monkeypatch.setattr(se.SERunner, "plan", lambda s, ins: planned.append(plan(s, ins)) or planned[-1])
    return planned
