"""The tactic registry (CPU): every family declares its properties as data; writes_in_place agrees
with the kernels it builds; tactic names are unique; candidates get the layer's shapes as an argument."""
import copy
import subprocess
import sys

import pytest
import torch

import tensorforge as tf
from tensorforge import kernels
from tensorforge.kernels import LayerShapes, registry

from . import cases

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
LIBRARIES = {"ATEN", "CUBLAS", "CUBLAS_LT", "CUDNN", "TRITON", "PLUGIN"}
# the candidates order (a family's tactics come before the next family's: level 0 takes the first)
ORDER = [("aten", "reference"), ("aten", "attention"), ("aten", "concat"), ("aten", "control"), ("aten", "conv"),
         ("aten", "lt"), ("aten", "gemm"), ("aten", "quant"), ("aten", "scaled_mm"), ("aten", "scaled_lt"),
         ("triton", "flash"), ("triton", "sdpa_q"),
         ("triton", "conv"), ("triton", "dwconv"),
         ("triton", "gemm"), ("triton", "qgemm"), ("triton", "qconv"), ("triton", "fp16_form"), ("triton", "pool"),
         ("triton", "se"),
         ("triton", "pointwise"), ("triton", "softmax"), ("triton", "reduce"), ("triton", "epilogue"), ("triton", "norm"),
         ("plugin", "plugin_device")]


def _all_families():
    for src in registry.SOURCES:
        registry.load(src)
    return [f for f in kernels.families() if f.source in registry.SOURCES
            and not f.name.startswith("plugin ")]  # user plugins' families (tensorforge.plugin) come and go


def test_every_family_declares_source_library_level_and_in_place():
    fams = _all_families()
    assert [(f.source, f.name) for f in fams] == ORDER
    for f in fams:
        assert f.tactics and all(callable(make) for make in f.factories.values()), f.name
        assert callable(f.candidates) and isinstance(f.needs_shapes, bool)
        assert isinstance(f.level, int) and 1 <= f.level <= 5
        assert isinstance(f.writes_in_place, bool)
        lib = f.library({}) if callable(f.library) else f.library
        assert lib in LIBRARIES, (f.name, lib)
        for name in f.tactics:
            assert kernels.family_of({"source": f.source, "name": name}) is f
    assert {f.name for f in fams if f.writes_in_place} == {"lt", "scaled_lt", "flash", "sdpa_q", "conv", "dwconv", "gemm", "qgemm", "qconv", "fp16_form",
                                                           "pool", "se", "pointwise", "softmax", "reduce", "epilogue", "norm",
                                                           "concat"}


def test_library_and_level_queries():
    lib = kernels.library_of
    assert lib({"source": "aten", "name": "conv2d_relu"}) == "CUDNN"
    assert lib({"source": "aten", "name": "gemm_addmm"}) == lib({"source": "aten", "name": "cublaslt"}) == "CUBLAS_LT"
    assert lib({"source": "aten", "name": "sdpa", "params": {"backend": "cudnn"}}) == "CUDNN"
    assert lib({"source": "aten", "name": "sdpa", "params": {"backend": "flash"}}) == "ATEN"
    assert lib(kernels.reference()) == "ATEN" and lib({"source": "triton", "name": "norm"}) == "TRITON"
    assert lib({"source": "aten", "name": "nope"}) == "ATEN" and lib({"source": "other", "name": "x"}) == "OTHER"
    assert kernels.level_of({"source": "triton", "name": "norm", "level": 4}) == 4
    assert kernels.level_of({"source": "triton", "name": "norm"}) == 1 == kernels.level_of(kernels.reference())


def test_same_tactic_name_twice_raises():
    ref = kernels.family_of(kernels.reference())
    with pytest.raises(ValueError, match="reference"):
        kernels.tactic_family("aten", {"reference": ref.factories["reference"]}, library="ATEN")(lambda *a: [])
    with pytest.raises(ValueError, match="norm"):
        kernels.tactic_family("triton", {"fresh": ref.factories["reference"], "norm": ref.factories["reference"]},
                              library="TRITON")(lambda *a: [])
    # a rejected family leaves nothing behind
    assert kernels.family_of(kernels.reference()) is ref
    assert kernels.family_of({"source": "triton", "name": "fresh"}) is None


@pytest.fixture
def recorder():
    """A family of source 'recorder' that records every candidates call and offers nothing."""
    calls = []

    def never(layer, attrs, opset, device, params):
        raise AssertionError("never built")

    @kernels.tactic_family("recorder", {"recorded": never}, library="ATEN")
    def record(layer, shapes, device):
        calls.append((copy.deepcopy(layer), shapes, device))
        return []
    yield calls
    registry.unregister(kernels.family_of({"source": "recorder", "name": "recorded"}))


def test_candidates_get_shapes_as_an_argument(recorder):
    from tensorforge.runtime.plan import LayerSpec
    lay = LayerSpec("l", "Relu", ["x"], ["y"])
    shapes = LayerShapes.of([{"dtype": "float32", "shape": [2, 3], "kind": "activation"}],
                            [{"dtype": "float32", "shape": [2, 3], "kind": "activation"}])
    assert kernels.candidates(lay, shapes, CPU) == [kernels.reference()]
    assert len(recorder) == 1 and recorder[0][1] is shapes and recorder[0][2] == CPU
    kernels.candidates(lay, None, CPU)  # data-dependent shapes: families that need shapes are not asked
    assert len(recorder) == 1
    assert not hasattr(lay, "shape_info")


def _zoo_layers(recorder, model):
    """(layer, shapes) of every kernel layer of a level-0 FP16 CPU build, as the selector passes them."""
    recorder.clear()
    tf.Builder(tf.BuilderConfig(opt_level=0, device="cpu", fp16=True)).build(f"zoo:{model}")
    assert recorder and all(not hasattr(lay, "shape_info") for lay, _, _ in recorder)
    return [(lay, shapes) for lay, shapes, _ in recorder if shapes is not None]


def _in_place_cases(lay, shapes):
    """Every tactic offered for the layer on a CUDA device (+ cuBLASLt for weight GEMMs, which
    asks the GPU for its algorithms), each also inside an NHWC chain (the layout wrapper)."""
    tactics = kernels.candidates(lay, shapes, CUDA)
    if lay.type in ("MatMul", "Gemm", "fused.MatMulAct", "fused.GemmAct"):
        tactics.append({"source": "aten", "name": "cublaslt", "params": {"act": "none", "res": 0, "algo": 0}})
    for t in tactics:
        yield t
        if len(shapes.inputs) and shapes.inp(0) is not None and len(shapes.inp(0)["shape"]) == 4:
            yield dict(t, params=dict(t["params"], in_nhwc=[0], out_nhwc=[0]))


@pytest.mark.parametrize("model", ["resnet50_small", "bert_base_small"])
def test_writes_in_place_matches_the_kernels(recorder, model):
    seen = set()
    for lay, shapes in _zoo_layers(recorder, model):
        assert isinstance(shapes, LayerShapes) and len(shapes.inputs) == len(lay.inputs)
        for t in _in_place_cases(lay, shapes):
            lay.tactic = t
            fn = kernels.make_kernel(lay, 17, CPU)
            assert getattr(fn, "takes_out", False) == kernels.writes_in_place(t), (lay.name, t)
            seen.add((t["source"], t["name"]))
    want = {("aten", "reference"), ("aten", "cublaslt")}
    want |= {("aten", "conv2d_nhwc"), ("aten", "conv2d_relu"), ("aten", "conv2d_add_relu")} \
        if model == "resnet50_small" else {("aten", "sdpa"), ("aten", "matmul_addmm_act")}
    if cases.HAS_TRITON:
        want |= {("triton", n) for n in (("conv_igemm", "pool", "epilogue") if model == "resnet50_small" else
                                         ("gemm", "flash_attention", "norm", "pointwise"))}
    assert want <= seen, (want - seen, seen)


def test_cpu_candidates_import_no_triton():
    code = ("import sys, torch; from tensorforge import kernels; from tensorforge.runtime.plan import LayerSpec\n"
            "lay = LayerSpec('l', 'fused.LayerNorm', ['x'], ['y'], attrs={'axis': -1})\n"
            "s = kernels.LayerShapes.of([{'dtype': 'float16', 'shape': [4, 8], 'kind': 'activation'}])\n"
            "assert kernels.candidates(lay, s, torch.device('cpu')) == [kernels.reference()]\n"
            "assert not kernels.writes_in_place(kernels.reference())\n"
            "assert not [m for m in sys.modules if m == 'triton' or m.startswith('tensorforge.kernels.triton')]\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_conv_epilogue_tactic_joins_nhwc_chains_on_cuda():
    """The generic conv+epilogue tactic of a 2-D conv is channels-last on CUDA (nhwc_ok), as on CPU it is not."""
    import torch

    from tensorforge.kernels import LayerShapes
    from tensorforge.kernels.triton.generated import epilogue_candidates
    from tensorforge.runtime.plan import LayerSpec
    lay = LayerSpec("c", "fused.ConvAct", ["x", "w"], ["y"], attrs={"epilogue": {"nodes": [], "out": 0}})
    shapes = LayerShapes.of([{"dtype": "float16", "shape": [8, 3, 224, 224], "kind": "activation"},
                             {"dtype": "float16", "shape": [64, 3, 7, 7], "kind": "weight"}])
    assert [t["params"].get("nhwc_ok") for t in epilogue_candidates(lay, shapes, torch.device("cuda"))] == [True]
    assert [t["params"].get("nhwc_ok") for t in epilogue_candidates(lay, shapes, torch.device("cpu"))] == [None]
    assert [t["params"].get("nhwc_ok") for t in epilogue_candidates(lay, None, torch.device("cuda"))] == [None]
