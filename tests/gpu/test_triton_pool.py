"""Triton pool kernels (tactic "pool") on CUDA: every offered config vs the ops' references,
fp16 / bf16 / fp32, NCHW / channels-last / strided inputs, >2**31-element tensors, and a
ResNet FP16 engine whose MaxPool (in a channels-last chain) runs the triton kernel, vs ORT."""
import numpy as np
import pytest
import torch

import tensorforge as tf
from tensorforge.runtime.plan import LayerSpec
from tests.gpu import sweep
from tests.kernels import test_triton_pool as P

CUDA = torch.device("cuda")
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
ODD = (3, 67, 23, 29)


def _configs(kind, shape, every=True):
    """The tactics pool_candidates offers for a layer of this kind and input shape (every: levels
    3 and 4, else the two level-3 ones)."""
    from tensorforge.kernels import LayerShapes
    from tensorforge.kernels.triton.pool import pool_candidates
    attrs = {"kernel_shape": [3, 3]} if kind in P.WINDOW else {}
    lay = LayerSpec("p", kind, ["x"], ["y"], attrs=attrs)
    cands = pool_candidates(lay, LayerShapes.of([{"dtype": "float16", "shape": list(shape), "kind": "activation"}]),
                            CUDA)
    assert cands and sum("level" not in c for c in cands) == 2
    return [c["params"] for c in cands if every or "level" not in c]


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_attribute_case(dtype):
    params = {"BLOCK_P": 32, "BLOCK_C": 64, "num_warps": 4}
    P.check_all("cuda", dtype, params, shape=ODD)
    P.check_nan("cuda", dtype, params)
    P.check_out_buffer("cuda", dtype, params)


def test_max_pools_on_8_bit_inputs():
    """int8 / uint8 max pools (a quantized ResNet's MaxPool) at an odd size, each level-3 config."""
    for params in _configs("MaxPool", ODD, every=False):
        P.check_bytes("cuda", params, shape=ODD)


@pytest.mark.fast(case=0, dtype=torch.float16)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [0, 7])
def test_every_config_windowed(case, dtype):
    """All configs in fp16 (compile time: the others run the two level-3 configs)."""
    kind, attrs = P.WINDOW_CASES[case]
    for shape in (ODD, (2, 64, 56, 56)):
        for params in sweep.pick(_configs(kind, shape, every=dtype == torch.float16 and shape != ODD)):
            P.check_all("cuda", dtype, params, shape=shape, cases=[(kind, attrs)], strided=0)


@pytest.mark.fast(kind="GlobalAveragePool", dtype=torch.bfloat16)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["GlobalAveragePool", "GlobalMaxPool"])
def test_every_config_global(kind, dtype):
    for shape in (ODD, (4, 2048, 7, 7), (2, 5, 40, 33)):
        for params in sweep.pick(_configs(kind, shape, every=dtype == torch.float16 and shape[1] == 2048)):
            P.check_all("cuda", dtype, params, shape=shape, cases=[(kind, {})], strided=0)


def test_resnet_stem_exact_at_full_size():
    """The stem pool of ResNet-50 bs8: max is exact, channels-last in and out."""
    kind, attrs = P.WINDOW_CASES[0]
    x = P.rand((8, 64, 112, 112), torch.float16, CUDA, 9).contiguous(memory_format=torch.channels_last)
    for params in sweep.pick(_configs(kind, x.shape)):
        got = P.runner(kind, attrs, params)([x])[0]
        assert got.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(got, P.reference(kind, attrs, x)), params


def test_more_than_2_31_elements():
    """Offsets switch to int64 (BIG) past 2**31 elements; max pools are exact."""
    x = P.rand((64, 8, 2048, 2048), torch.float16, CUDA, 10)  # 2**31 elements, 4 GiB
    for kind, attrs in (P.WINDOW_CASES[0], ("GlobalMaxPool", {})):
        want = P.reference(kind, attrs, x)
        assert torch.equal(P.runner(kind, attrs, {"BLOCK_P": 64, "BLOCK_C": 64})([x])[0], want), kind
        xc = x.contiguous(memory_format=torch.channels_last)
        assert torch.equal(P.runner(kind, attrs, {"BLOCK_P": 64, "BLOCK_C": 64})([xc])[0], want), kind
        del xc


def _cos(a, b):
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _build_and_compare(cfg):
    from tensorforge import zoo
    from tensorforge.testing import run_ort
    model, feed = zoo.get_model("resnet50_small"), zoo.random_inputs("resnet50_small", 4, seed=11)
    eng = tf.Builder(cfg).build(model)
    got = eng.create_execution_context().infer(feed)
    for k, r in run_ort(model, feed).items():
        g = got[k].float().cpu().numpy()
        assert np.isfinite(g).all() and _cos(g, r) >= 0.999, (k, _cos(g, r))
    return eng


def test_resnet_fp16_engine_runs_triton_maxpool_in_nhwc_chain(monkeypatch):
    """Timer forced: channels-last convs and the triton pool win; the MaxPool then reads and
    writes NHWC chain buffers in place (takes_out through the layout wrapper)."""
    from tensorforge import kernels
    from tensorforge.builder import tactics

    def timer(layer, tactic, bench):
        p = tactic.get("params") or {}
        if tactic["source"] == "triton" and tactic["name"] == "pool":
            return 0.01
        return 0.1 if p.get("weight_layout") == "channels_last" else 1.0
    monkeypatch.setattr(tactics, "TIMER", timer)
    eng = _build_and_compare(tf.BuilderConfig(device="cuda", fp16=True))
    layers = {lay.name: lay for lay in eng.plan.layers}
    pools = [lay for lay in eng.plan.layers if lay.type in ("MaxPool", "GlobalAveragePool")]
    assert pools and all(lay.tactic["name"] == "pool" for lay in pools), [lay.tactic for lay in pools]
    mp = next(lay for lay in pools if lay.type == "MaxPool")
    producer = next(lay for lay in layers.values() if mp.inputs[0] in lay.outputs)
    if (producer.tactic.get("params") or {}).get("weight_layout") == "channels_last":
        assert mp.tactic["params"].get("in_nhwc") == [0] and mp.tactic["params"].get("out_nhwc") == [0]
    assert getattr(kernels.make_kernel(mp, eng.plan.opset, CUDA), "takes_out", False)
    assert kernels.writes_in_place(mp.tactic)


def test_resnet_fp16_engine_timed_selection_offers_pool():
    """Normal (timed) selection: the pool tactic is a candidate; whichever wins, the engine matches."""
    import copy

    from tensorforge import kernels
    eng = _build_and_compare(tf.BuilderConfig(device="cuda", fp16=True))
    mp = next(lay for lay in eng.plan.layers if lay.type == "MaxPool")
    print("MaxPool tactic:", mp.tactic)
    lay, t = copy.deepcopy(mp), eng.plan.tensors[mp.inputs[0]]
    lay.tactic = {"source": "aten", "name": "reference", "params": {}}
    x = {"dtype": t.dtype, "shape": [d if isinstance(d, int) else 4 for d in t.shape], "kind": "activation"}
    shapes = kernels.LayerShapes.of([x])
    assert any(c["source"] == "triton" and c["name"] == "pool" for c in kernels.candidates(lay, shapes, CUDA))
