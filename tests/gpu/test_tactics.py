"""Every aten tactic of every kernel family matches the layer's reference on random odd-sized
inputs (CUDA), and a timing cache reproduces a build's tactics."""
import contextlib

import pytest
import torch

import tensorforge as tf
from tensorforge import kernels
from tensorforge.builder.autotune import layer_fn
from tensorforge.kernels import LayerShapes
from tensorforge.runtime.plan import LayerSpec

CUDA = torch.device("cuda")
TOL = {"float32": 1e-4, "float16": 1e-2, "bfloat16": 4e-2}
RELU = {"nodes": [{"op": "input", "i": 0}, {"op": "Relu", "args": [0], "attrs": {}}], "out": 1}
ADD_RELU = {"nodes": [{"op": "input", "i": 0}, {"op": "input", "i": 1}, {"op": "Add", "args": [0, 1], "attrs": {}},
                      {"op": "Relu", "args": [2], "attrs": {}}], "out": 3}
GELU_TANH = {"nodes": [{"op": "input", "i": 0}, {"op": "Gelu", "args": [0], "attrs": {"approximate": "tanh"}}],
             "out": 1}
# backends / cuDNN runtime fusion may refuse a configuration; the builder then skips the tactic
MAY_REFUSE = ("conv2d_relu", "conv2d_add_relu", "sdpa")
# the Triton tactics offered here run as tests/gpu/sweep's subset (their spaces: test_triton_*)
pytestmark = pytest.mark.usefixtures("triton_sweep")


@contextlib.contextmanager
def _no_tf32():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _rand(shape, dtype, seed, kind="activation"):
    g = torch.Generator().manual_seed(seed)
    t = (torch.rand(shape, generator=g) * 2 - 1) * (0.3 if kind == "weight" else 1.0)
    return t.to(dtype).to(CUDA)


def _layer(type_, specs, out_specs, attrs):
    """(layer, its LayerShapes)."""
    lay = LayerSpec("l", type_, [f"i{k}" for k in range(len(specs))], ["o"], attrs=attrs)
    return lay, LayerShapes.of([None if s is None else {"dtype": s[0], "shape": list(s[1]), "kind": s[2]}
                                for s in specs],
                               [{"dtype": s[0], "shape": list(s[1]), "kind": "activation"} for s in out_specs])


def _check_all(case, dtype, specs):
    """Run every candidate tactic of (layer, shapes) against the reference; returns the tactic names checked."""
    lay, shapes = case
    cands = kernels.candidates(lay, shapes, CUDA)
    ins = [None if s is None else _rand(s[1], getattr(torch, s[0]), k, s[2]) for k, s in enumerate(specs)]
    with _no_tf32():
        ref = layer_fn(lay, kernels.reference(), 17, CUDA)(list(ins))[0].float()
        refused, names = [], []
        for t in cands:
            t = {k: v for k, v in t.items() if k != "level"}
            try:
                got = layer_fn(lay, t, 17, CUDA)(list(ins))[0]
            except RuntimeError as e:
                if t["name"] in MAY_REFUSE:
                    refused.append(f"{t['name']}{t['params']}: {str(e).splitlines()[0][:120]}")
                    continue
                raise
            assert got.shape == ref.shape and got.dtype == getattr(torch, dtype), t
            err = (got.float() - ref).abs().max().item() / ref.abs().max().item()
            assert err <= TOL[dtype], (t, err)
            names.append(t["name"])
    if refused:
        print("refused:", refused)
    return names


@pytest.mark.fast(dtype="float16", epilogue=ADD_RELU, geom=dict(pads=[1, 1, 1, 1]))
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("epilogue", [None, RELU, ADD_RELU])
@pytest.mark.parametrize("geom", [dict(pads=[1, 1, 1, 1]), dict(pads=[0, 1, 1, 0], strides=[2, 2]),
                                  dict(pads=[1, 1, 1, 1], group=5), dict(pads=[3, 3, 3, 3], strides=[2, 2], cin=3, k=7)])
def test_conv_tactics(dtype, epilogue, geom):
    g, cin, k = geom.get("group", 1), geom.get("cin", 5), geom.get("k", 3)
    x, w, b = (dtype, (3, cin, 11, 13), "activation"), (dtype, (15, cin // g, k, k), "weight"), (dtype, (15,), "weight")
    st = geom.get("strides", [1, 1])
    pads = geom["pads"]
    oh = (11 + pads[0] + pads[2] - k) // st[0] + 1
    ow = (13 + pads[1] + pads[3] - k) // st[1] + 1
    out = (dtype, (3, 15, oh, ow))
    specs = [x, w, b] + ([(dtype, out[1], "activation")] if epilogue is ADD_RELU else [])
    attrs = dict({k2: v for k2, v in geom.items() if k2 not in ("cin", "k")}, epilogue=epilogue) if epilogue \
        else {k2: v for k2, v in geom.items() if k2 not in ("cin", "k")}
    case = _layer("fused.ConvAct" if epilogue else "Conv", specs, [out], attrs)
    names = _check_all(case, dtype, specs)
    assert "conv2d_nhwc" in names


@pytest.mark.fast(dtype="float16", epilogue=GELU_TANH)
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("epilogue", [None, RELU, GELU_TANH])
def test_gemm_tactics(dtype, epilogue):
    specs = [(dtype, (37, 67), "activation"), (dtype, (45, 67), "weight"), (dtype, (45,), "weight")]
    attrs = {"transB": 1, **({"epilogue": epilogue} if epilogue else {})}
    case = _layer("fused.GemmAct" if epilogue else "Gemm", specs, [(dtype, (37, 45))], attrs)
    assert "gemm_addmm" in _check_all(case, dtype, specs)
    if epilogue:
        specs = [(dtype, (3, 13, 67), "activation"), (dtype, (67, 45), "weight"), (dtype, (45,), "weight")]
        case = _layer("fused.MatMulAct", specs, [(dtype, (3, 13, 45))], {"epilogue": epilogue})
        assert "matmul_addmm_act" in _check_all(case, dtype, specs)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_erf_gelu_as_tanh_epilogue(dtype):
    """An exact (erf) GELU in FP16/BF16 may run as cuBLASLt's tanh GELU epilogue: within tolerance."""
    erf = {"nodes": [{"op": "input", "i": 0}, {"op": "Gelu", "args": [0], "attrs": {}}], "out": 1}
    specs = [(dtype, (3, 97, 256), "activation"), (dtype, (256, 320), "weight"), (dtype, (320,), "weight")]
    case = _layer("fused.MatMulAct", specs, [(dtype, (3, 97, 320))], {"epilogue": erf})
    assert "matmul_addmm_act" in _check_all(case, dtype, specs)


@pytest.mark.fast(dtype="float16", mask=True)
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("mask", [False, True])
def test_attention_tactics(dtype, mask):
    b, s, h, d = 3, 37, 4, 64
    view = [["reshape", [b, s, h, d]], ["transpose", [0, 2, 1, 3]]]
    attrs = {"q_view": view, "k_view": view, "v_view": view, "scale": d ** -0.5,
             "out_view": [["transpose", [0, 2, 1, 3]], ["reshape", [b, s, h * d]]]}
    specs = [(dtype, (b, s, h * d), "activation")] * 3
    if mask:
        specs.append((dtype, (b, 1, 1, s), "activation"))
    case = _layer("fused.Attention", specs, [(dtype, (b, s, h * d))], attrs)
    names = _check_all(case, dtype, specs)
    assert "sdpa" in names or dtype == "float32"


@pytest.mark.fast
def test_same_cache_same_tactics_on_gpu(tmp_path):
    from tests.core.models import conv_net
    path = str(tmp_path / "tc.json")
    engs = []
    for _ in range(2):
        cfg = tf.BuilderConfig(device="cuda", fp16=True, timing_cache=path)
        engs.append(tf.Builder(cfg).build(conv_net()))
    a, b = ([(lay.name, lay.tactic) for lay in e.plan.layers] for e in engs)
    assert a == b
    sel = engs[1].plan.meta["tactic_selection"]
    assert sel["timed"] == 0 and sel["cache_hits"] >= 1
    assert sel["time_s"] < engs[0].plan.meta["tactic_selection"]["time_s"]
