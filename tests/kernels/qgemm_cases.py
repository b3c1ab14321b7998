"""Quantized GEMM layers (fused.QGemm / fused.QMatMul) with random, never-zero inputs on odd shapes,
and the checks of a tactic's output against the layer's reference; shared by the interpreter tests
(tests/kernels/test_triton_qgemm.py, tests/kernels/test_scaled_mm.py) and the CUDA tests
(tests/gpu/test_quant_kernels_gpu.py)."""
from __future__ import annotations

import numpy as np
import torch

from tensorforge.kernels import LayerShapes
from tensorforge.ops import registry
from tensorforge.ops.fused.expr import ExprBuilder
from tensorforge.runtime.plan import LayerSpec

from . import cases

F8 = "float8e4m3fn"
TORCH = {F8: torch.float8_e4m3fn, "int8": torch.int8, "uint8": torch.uint8, "float32": torch.float32,
         "float16": torch.float16, "int64": torch.int64, "bool": torch.bool}


def gelu_expr():
    b = ExprBuilder()
    return b.build(b.op("Gelu", [b.input(0)], {"approximate": "none"}))


def _q(t, qtype):
    """Random floats quantized to qtype's values, none of them zero."""
    if qtype == F8:
        t = torch.where(t.abs() < 0.05, torch.full_like(t, 0.25), t)
        return t.to(torch.float8_e4m3fn)
    q = torch.round(t * 40).clamp(-127, 127)
    return torch.where(q == 0, torch.ones_like(q), q).to(torch.int8)


def make(typ="fused.QGemm", qtype=F8, lead=(37,), n=48, k=80, *, per_channel=True, bias=True, epi=None,
         residual=None, out_q=None, saturate=False, device="cpu", seed=0):
    """(LayerSpec, LayerShapes, attrs, inputs) of one quantized GEMM layer. epi: None | 'gelu' | 'relu_res';
    residual (with relu_res): 'float32' or a quantized type (then extra_q names its scale); out_q: None
    or the output Q's type (its scale fitted to the output's range; saturate: so that the largest
    values saturate)."""
    g = torch.Generator().manual_seed(seed)
    kmajor = typ == "fused.QGemm"
    x = _q(torch.randn(*lead, k, generator=g) * 3, qtype)
    w = _q(torch.randn(*((n, k) if kmajor else (k, n)), generator=g) * 2, qtype)
    ws = (torch.rand(n, generator=g) * 0.02 + 0.005) if per_channel else torch.tensor(0.013)
    b = torch.randn(n, generator=g) if bias else None
    attrs = {"x_scale": 0.05, "x_zp": 0, "w_zp": 0}
    if kmajor:
        attrs.update(transB=1, alpha=1.0)
    ins = [x, w, b, ws.float()]
    if epi == "gelu":
        attrs["epilogue"] = gelu_expr()
    elif epi == "relu_res":
        attrs["epilogue"] = cases.residual_relu_expr()
        r = torch.randn(*lead, n, generator=g)
        if residual != "float32":
            attrs["extra_q"] = [[0.02, 0, residual]]
            r = _q(r * 0.5, residual) if residual == F8 else torch.round(r * 30).clamp(-127, 127).to(torch.int8)
        ins.append(r)
    out_dt = "float32"
    if out_q:
        y = registry.get(typ).run(ins, attrs, 17)[0]
        top = (300.0 if out_q == F8 else 100.0) * (2.5 if saturate else 1.0)
        attrs["out_q"] = [float(y.abs().amax()) / top, 0, out_q]
        out_dt = out_q
    ins = [None if t is None else t.to(device) for t in ins]
    lay = LayerSpec("l", typ, [f"i{j}" if t is not None else None for j, t in enumerate(ins)], ["o"], attrs=attrs)
    kinds = ["activation", "weight", "weight", "weight"] + ["activation"] * (len(ins) - 4)
    descs = [None if t is None else {"dtype": _name(t), "shape": list(t.shape), "kind": kd}
             for t, kd in zip(ins, kinds)]
    shapes = LayerShapes.of(descs, [{"dtype": out_dt, "shape": list(lead) + [n], "kind": "activation"}])
    return lay, shapes, attrs, ins


def _name(t):
    return {v: k for k, v in TORCH.items()}.get(t.dtype, str(t.dtype).removeprefix("torch."))


def reference(lay, ins):
    return registry.get(lay.type).run([None if t is None else t.cpu() for t in ins], lay.attrs, 17)[0]


def check(got, want, rel=2e-3):
    """A tactic's output vs the reference: same dtype and shape; float outputs within `rel` of the
    largest value; e4m3 outputs within one e4m3 step on >= 97 % of the elements (a value near a
    rounding boundary moves by a step when the accumulation order changes) and within two steps
    everywhere, or within 2**-12 of the largest value (Hopper's FP8 MMA adds each K block in a
    reduced-precision accumulator, ~2**-14 of the partial sums: where a residual cancels the product
    the result sits among e4m3's subnormals, whose steps are far finer; session 9's H200 run: 10 steps
    of 2**-9 at a largest value of ~300); int8 outputs within one step on >= 99 % and within two everywhere."""
    got = got.cpu()
    assert got.dtype == want.dtype and tuple(got.shape) == tuple(want.shape), (got.dtype, want.dtype, got.shape)
    gf, wf = got.float(), want.float()
    assert torch.isfinite(gf).all()
    if want.dtype == torch.float8_e4m3fn:
        step = torch.clamp(2.0 ** (torch.floor(torch.log2(wf.abs().clamp_min(2 ** -6))) - 3), min=2 ** -9)
        diff = (gf - wf).abs()
        d = torch.where(diff <= float(wf.abs().max()) * 2 ** -12, torch.zeros_like(diff), diff / step)
        assert float((d > 1.01).float().mean()) <= 0.03 and float(d.max()) <= 2.01, float(d.max())
    elif not want.is_floating_point():
        d = (got.to(torch.int64) - want.to(torch.int64)).abs()
        assert float((d > 0).float().mean()) <= 0.01 and int(d.max()) <= 2, int(d.max())
    else:
        err = float((gf - wf).abs().max()) / max(float(wf.abs().max()), 1e-6)
        assert err <= rel, err


def ffn_model(batch=64, d=128, h=384):
    """x -> MatMul + b -> Relu -> MatMul + b -> + x -> LayerNorm: an FFN block (FP32 ONNX)."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array((rng.standard_normal(s) * 0.05).astype(np.float32), n)
             for n, s in (("w1", (d, h)), ("w2", (h, d)))]
    inits += [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32) * 0.1, n)
              for n, s in (("b1", (h,)), ("b2", (d,)))]
    inits += [numpy_helper.from_array(np.ones(d, np.float32), "g"),
              numpy_helper.from_array(np.zeros(d, np.float32), "be")]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["m1"], name="fc1"),
             helper.make_node("Add", ["m1", "b1"], ["a1"]), helper.make_node("Relu", ["a1"], ["g1"]),
             helper.make_node("MatMul", ["g1", "w2"], ["m2"], name="fc2"),
             helper.make_node("Add", ["m2", "b2"], ["a2"]),
             helper.make_node("Add", ["a2", "x"], ["r"]),
             helper.make_node("LayerNormalization", ["r", "g", "be"], ["y"], axis=-1)]
    g = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, d])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, d])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)],
                             ir_version=10)  # ONNX Runtime 1.30 (the GPU image) reads IR <= 13


def quantized_layers(mode, model=None, seed=0, **quantize_kw):
    """[(LayerSpec, LayerShapes, inputs)] of the layers the builder makes of a quantized model
    (default ffn_model(): the activation Q as a pointwise kernel; bias and the output Q folded into
    the GEMMs' epilogue expressions; a quantized residual; a zoo:NAME is calibrated on its random
    inputs), with random activations (never zero; dynamic dims 2) and the real weights."""
    import tensorforge as tf
    from tensorforge import zoo
    from tensorforge.quant import quantize
    rng = np.random.default_rng(1)
    if model is None:
        model, feeds = ffn_model(), [{"x": rng.standard_normal((64, 128)).astype(np.float32)} for _ in range(4)]
    else:
        feeds = [zoo.random_inputs(model, 2, seed=i) for i in range(2)]
        model = zoo.get_model(model)
    eng = tf.Builder(tf.BuilderConfig(device="cpu", opt_level=0)).build(quantize(model, mode, feeds, "max",
                                                                                  **quantize_kw))
    plan, g = eng.plan, torch.Generator().manual_seed(seed)
    out = []
    for lay in plan.layers:
        ins, descs = [], []
        for n in lay.inputs:
            if n is None:
                ins.append(None)
                descs.append(None)
                continue
            spec = plan.tensors[n]
            if n in eng.weights:
                t = eng.weights[n]
            elif spec.dtype in ("float32", "float16", F8, "int8"):
                t = torch.randn(*[d if isinstance(d, int) else 2 for d in spec.shape], generator=g) * 3
                t = t.to(TORCH[spec.dtype]) if spec.dtype.startswith("float1") or spec.dtype == "float32" else \
                    _q(t, spec.dtype)
            else:  # ids, masks: the layer is not one these tests run
                t = torch.ones([d if isinstance(d, int) else 2 for d in spec.shape], dtype=TORCH.get(spec.dtype))
            ins.append(t)
            descs.append({"dtype": spec.dtype, "shape": list(t.shape),
                          "kind": "weight" if n in eng.weights else "activation"})
        o = plan.tensors[lay.outputs[0]]
        oshape = [d if isinstance(d, int) else 2 for d in o.shape]
        out.append((lay, LayerShapes.of(descs, [{"dtype": o.dtype, "shape": oshape, "kind": "activation"}]), ins))
    return out


def bias_extra_case(device="cpu", per_channel=True):
    """A QMatMul as the passes leave BERT's FP8 QKV projection: the bias an FP16 extra input read by the
    epilogue (y + b), the output FP16 (attrs out_dtype)."""
    lay, shapes, attrs, ins = make("fused.QMatMul", F8, (2, 40), 64, 96, bias=False, per_channel=per_channel)
    b = ExprBuilder()
    attrs = dict(attrs, epilogue=b.build(b.op("Add", [b.input(0), b.input(1)])), out_dtype="float16")
    ins = [None if t is None else t.to(device) for t in ins + [torch.randn(64, dtype=torch.float16)]]
    lay = LayerSpec("l", "fused.QMatMul", ["x", "w", None, "ws", "b"], ["o"], attrs=attrs)
    descs = [{"dtype": F8, "shape": [2, 40, 96], "kind": "activation"},
             {"dtype": F8, "shape": [96, 64], "kind": "weight"}, None,
             {"dtype": "float32", "shape": list(ins[3].shape), "kind": "weight"},
             {"dtype": "float16", "shape": [64], "kind": "weight"}]
    return lay, LayerShapes.of(descs, [{"dtype": "float16", "shape": [2, 40, 64], "kind": "activation"}]), attrs, ins
