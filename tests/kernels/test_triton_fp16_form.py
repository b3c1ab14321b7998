"""Triton tactic "fp16_form_pw" (kernels/triton/fp16_form.py): a quantized weighted layer run in FP16 as
the no-regression candidate, in triton's CPU interpreter vs the layer's exact quantized reference (FP16
rounding: quantized outputs within a few steps, float outputs within 1e-2 of their scale), NCHW and NHWC
chains (in place), and its candidates."""
import pytest
import torch

from tensorforge import kernels
from tensorforge.kernels.layouts import logical, raw
from tensorforge.ops import registry
from tensorforge.runtime.plan import LayerSpec
from tests.kernels import cases
from tests.kernels import test_triton_qconv as QC

PARAMS = {"BLOCK": 1024, "num_warps": 4}


@pytest.fixture(autouse=True)
def kernel_ran(monkeypatch):
    """Every call runs the generated kernel (never the reference fallback)."""
    cases.epilogue_must_run(monkeypatch)


def _fn(kind, attrs, n_in, device="cpu", **params):
    lay = LayerSpec("q", kind, [f"i{k}" for k in range(n_in)], ["y"], attrs=attrs,
                    tactic={"source": "triton", "name": "fp16_form_pw", "params": {**PARAMS, **params}})
    return kernels.make_kernel(lay, 17, torch.device(device))


def check_qconv_cases(device, qtype, **params):
    """Every qconv case through the tactic on `device` vs the exact quantized reference."""
    for name, attrs, ins in QC.qconv_cases(device, qtype):
        want = registry.get("fused.QConv").run([None if t is None else t.cpu() for t in ins], attrs, 17)[0]
        _close(_fn("fused.QConv", attrs, len(ins), device, **params)(ins)[0].cpu(), want, name)


def _close(got, want, name):
    assert got.dtype == want.dtype and tuple(got.shape) == tuple(want.shape), (name, got.dtype, want.dtype)
    g, w = got.float(), want.float()
    if want.is_floating_point() and want.dtype.itemsize > 1:
        assert float((g - w).abs().max()) <= 1e-2 * max(1.0, float(w.abs().max())), name
    else:  # quantized: FP16 rounding moves values near a step boundary by one step, rarely more
        step = 1.0 if not want.is_floating_point() else torch.clamp(
            2.0 ** (torch.floor(torch.log2(w.abs().clamp_min(2 ** -6))) - 3), min=2 ** -9)
        d = (g - w).abs() / step
        assert float((d > 1.01).float().mean()) <= 0.05 and float(d.max()) <= 4.01, (name, float(d.max()))


@cases.interpreter_only
@pytest.mark.parametrize("qtype", ["int8", QC.F8])
def test_qconv_cases(interpret, qtype):
    check_qconv_cases("cpu", qtype)


@cases.interpreter_only
def test_nhwc_chain_in_place(interpret):
    """A 4-D conv with in_nhwc / out_nhwc (nhwc_ok): NHWC bytes in, the output buffer written in place."""
    name, attrs, ins = next((n, a, i) for n, a, i in QC.qconv_cases("cpu", "int8") if n.startswith("1x1 residual"))
    want = registry.get("fused.QConv").run(ins, attrs, 17)[0]
    fn = _fn("fused.QConv", attrs, len(ins), nhwc_ok=True, weight_layout="channels_last", in_nhwc=[0, 4], out_nhwc=[0])
    buf = torch.empty(want.shape, dtype=want.dtype)
    got = fn([raw(ins[0]), ins[1], ins[2], ins[3], raw(ins[4])], [buf])
    assert got[0] is buf
    _close(logical(buf), want, name)


@cases.interpreter_only
@pytest.mark.parametrize("qtype", ["int8", QC.F8])
def test_quantized_gemms(interpret, qtype):
    x, w = QC._q((6, 32), qtype, 0), QC._q((32, 24), qtype, 1)
    ws, b = torch.rand(24) * 0.01 + 0.002, torch.randn(24)
    base = {"x_scale": 0.02, "x_zp": 0, "w_zp": 0, "out_dtype": "float16"}
    for kind, attrs, wt in (("fused.QMatMul", base, w), ("fused.QGemm", {**base, "transB": 1, "alpha": 0.5}, w.t().contiguous())):
        ins = [x, wt, b, ws]
        want = registry.get(kind).run(ins, attrs, 17)[0]
        _close(_fn(kind, attrs, 4)(ins)[0], want, kind)
        attrs_q = {**attrs, "out_q": [float(want.float().abs().max()) / 100.0, 0, qtype]}
        _close(_fn(kind, attrs_q, 4)(ins)[0], registry.get(kind).run(ins, attrs_q, 17)[0], kind + " out_q")


def test_candidates():
    from tensorforge.kernels.triton.fp16_form import fp16_form_candidates
    lay, shapes = QC._layer("int8", epilogue=cases.residual_relu_expr(), extras=[(4, 128, 14, 14)])
    cuda = torch.device("cuda")
    (t,) = fp16_form_candidates(lay, shapes, cuda)
    assert t["name"] == "fp16_form_pw" and t["params"]["nhwc_ok"] and t["params"]["weight_layout"] == "channels_last"
    assert t["level"] == 2 and t["params"]["out_dtype"] == "float16" and t["params"]["form"] == "fp16"
    assert fp16_form_candidates(lay, shapes, torch.device("cpu")) == []
