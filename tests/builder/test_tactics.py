"""Tactic enumeration, legality, selection rule, optimization levels, identical layers, layouts."""
import logging

import numpy as np
import pytest
import torch

import tensorforge as tf
from tensorforge import frontend, kernels
from tensorforge.kernels import LayerShapes
from tensorforge.builder import autotune, tactics
from tensorforge.builder.lower import lower
from tensorforge.runtime.plan import LayerSpec
from tensorforge.testing import assert_close, rand, run_ort

from .models import twin_convs

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def _info(*inputs):
    return LayerShapes.of([None if i is None else {"dtype": i[0], "shape": list(i[1]), "kind": i[2]}
                           for i in inputs])


def _layer(type_, n_in, attrs=None, info=None):
    """(layer, its shapes: None when unknown), the first two arguments of kernels.candidates."""
    return LayerSpec("l", type_, [f"i{k}" for k in range(n_in)], ["o"], attrs=attrs or {}), info


def _names(cands):
    return [(c["source"], c["name"]) for c in cands]


# ---- enumeration and legality ---------------------------------------------------------------
def test_reference_always_last_and_alone_without_shapes():
    assert kernels.candidates(*_layer("Conv", 2), CPU) == [{"source": "aten", "name": "reference", "params": {}}]
    assert kernels.candidates(*_layer("Relu", 1, info=_info(("float32", (2, 3), "activation"))), CUDA)[-1]["name"] == "reference"


def test_conv_nhwc_offered_only_for_2d_float_convs_with_weights():
    conv2d = _info(("float32", (1, 4, 9, 9), "activation"), ("float32", (8, 4, 3, 3), "weight"))
    assert ("aten", "conv2d_nhwc") in _names(kernels.candidates(*_layer("Conv", 2, info=conv2d), CPU))
    conv1d = _info(("float32", (1, 4, 9), "activation"), ("float32", (8, 4, 3), "weight"))
    assert _names(kernels.candidates(*_layer("Conv", 2, info=conv1d), CPU)) == [("aten", "reference")]
    act_w = _info(("float32", (1, 4, 9, 9), "activation"), ("float32", (8, 4, 3, 3), "activation"))
    assert _names(kernels.candidates(*_layer("Conv", 2, info=act_w), CPU)) == [("aten", "reference")]
    ints = _info(("int32", (1, 4, 9, 9), "activation"), ("int32", (8, 4, 3, 3), "weight"))
    assert _names(kernels.candidates(*_layer("Conv", 2, info=ints), CPU)) == [("aten", "reference")]


@pytest.mark.parametrize("attrs,bias,ok", [
    ({"transB": 1}, (5,), True), ({}, (1, 5), True), ({"transA": 1}, (5,), False),
    ({"alpha": 2.0}, (5,), False), ({}, (3, 5), False), ({}, None, False)])
def test_gemm_addmm_legality(attrs, bias, ok):
    b = (5, 7) if attrs.get("transB") else (7, 5)
    a = (7, 3) if attrs.get("transA") else (3, 7)
    info = _info(("float16", a, "activation"), ("float16", b, "weight"),
                 None if bias is None else ("float16", bias, "weight"))
    names = _names(kernels.candidates(*_layer("Gemm", 3, attrs, info), CUDA))
    assert (("aten", "gemm_addmm") in names) == ok
    assert ("aten", "gemm_addmm") not in _names(kernels.candidates(*_layer("Gemm", 3, attrs, info), CPU))


def test_tactic_keys_are_stable():
    t = {"source": "aten", "name": "conv2d_nhwc", "params": {"b": 1, "a": [2, 3]}}
    assert kernels.tactic_key(t) == 'aten:conv2d_nhwc:{"a":[2,3],"b":1}'
    assert autotune.parse_tactic_key(kernels.tactic_key(t)) == t
    assert kernels.tactic_hash(t) == kernels.tactic_hash(dict(reversed(list(t.items()))))


# ---- the selection rule -----------------------------------------------------------------------
def test_choose_is_pure_min_with_failures_skipped():
    assert autotune.choose({"a:x:{}": 2.0, "a:y:{}": 1.0, "a:z:{}": None}) == "a:y:{}"
    assert autotune.choose({"a:x:{}": 1.0, "a:w:{}": 1.0}) == "a:w:{}"  # ties: smaller key
    assert autotune.choose({"a:x:{}": None, "a:y:{}": float("nan")}) is None
    assert autotune.choose({}) is None


# ---- through the builder (CPU, injected timer) ----------------------------------------------------
def _build(model, **kw):
    kw.setdefault("opt_level", 4)  # on CPU the NHWC conv is an extended-search (level 4) tactic
    cfg = tf.BuilderConfig(device="cpu", **kw)
    return tf.Builder(cfg).build(model)


def _conv_tactics(eng):
    return [lay.tactic["name"] for lay in eng.plan.layers if lay.type in ("Conv", "fused.ConvAct")]


def test_fastest_kept_and_result_correct(fake_timer):
    fake_timer.table = {"conv2d_nhwc": 0.5, "reference": 1.0}
    eng = _build(twin_convs())
    assert _conv_tactics(eng) == ["conv2d_nhwc"] * 3
    fake_timer.table = {"conv2d_nhwc": 2.0, "reference": 1.0}
    assert _conv_tactics(_build(twin_convs())) == ["reference"] * 3


def test_nhwc_weights_laid_out_once_and_engine_matches_ort(fake_timer, tmp_path):
    fake_timer.table = {"conv2d_nhwc": 0.5}
    m = twin_convs()
    eng = _build(m)
    conv = [lay for lay in eng.plan.layers if lay.tactic["name"] == "conv2d_nhwc"]
    assert conv and all(eng.weights[lay.inputs[1]].is_contiguous(memory_format=torch.channels_last) for lay in conv)
    feed = {"x": rand((3, 4, 12, 12), seed=1)}
    ref = run_ort(m, feed)
    got = {k: v.numpy() for k, v in eng.create_execution_context().infer(feed).items()}
    assert_close(got, ref, 1e-4, 1e-4)
    eng.save(tmp_path / "e.engine")  # weights are stored contiguous; the kernel re-lays them out once
    eng2 = tf.Engine.load(tmp_path / "e.engine")
    got2 = {k: v.numpy() for k, v in eng2.create_execution_context().infer(feed).items()}
    assert_close(got2, ref, 1e-4, 1e-4)


def test_identical_layers_timed_once(fake_timer):
    _build(twin_convs())
    timed = [name for name, _ in fake_timer.calls]
    assert len(timed) == 2 * 2  # conv1 and one of conv2/conv3, each: nhwc + reference
    assert len(set(timed)) == 2


def _offer(fake_source, *tactic_specs):
    for name, level, params in tactic_specs:
        t = {"source": "fake", "name": name, "params": params}
        if level > 1:
            t["level"] = level
        fake_source.append(t)


@pytest.mark.parametrize("level,timed", [(0, 0), (1, 2), (2, 4), (3, 4), (4, 6), (5, 7)])
def test_optimization_levels_bound_the_search(fake_timer, fake_source, level, timed):
    _offer(fake_source, ("f1", 1, {}), ("f2", 1, {}), ("f3", 1, {}), ("x4", 4, {}), ("x5", 5, {}))
    # conv candidates on CPU: [aten nhwc (level 4)], f1, f2, f3, [x4], [x5], reference
    eng = _build(twin_convs(), opt_level=level)
    first = next(lay.name for lay in eng.plan.layers if lay.type in ("Conv", "fused.ConvAct"))
    per_layer = [t for name, t in fake_timer.calls if name == first]
    assert len(per_layer) == timed
    if level in (1, 2, 3):
        assert per_layer == ["f1", "f2", "f3", "reference"][:timed]


def test_level0_takes_first_candidate_without_timing(fake_timer, fake_source):
    _offer(fake_source, ("f1", 1, {}), ("f2", 1, {}))
    assert _conv_tactics(_build(twin_convs(), opt_level=0)) == ["f1"] * 3
    assert fake_timer.calls == []


def test_cpu_default_level_times_nothing(fake_timer):
    assert _conv_tactics(_build(twin_convs(), opt_level=3)) == ["reference"] * 3
    assert fake_timer.calls == []


def test_mismatching_and_failing_tactics_are_dropped(fake_timer, fake_source, caplog):
    _offer(fake_source, ("wrong", 1, {"wrong": 1}), ("boom", 1, {"raises": 1}))
    fake_timer.table = {"wrong": 0.01, "boom": 0.01, "conv2d_nhwc": 5.0}
    with caplog.at_level(logging.WARNING, logger="tensorforge"):
        eng = _build(twin_convs())
    assert _conv_tactics(eng) == ["reference"] * 3
    assert all(t not in ("wrong", "boom") for _, t in fake_timer.calls)
    assert "does not match the reference" in caplog.text and "failed (RuntimeError" in caplog.text


def test_tactic_sources_filter(fake_timer):
    fake_timer.table = {"conv2d_nhwc": 0.5}
    assert _conv_tactics(_build(twin_convs(), tactic_sources={"CUDNN": False})) == ["reference"] * 3
    assert _conv_tactics(_build(twin_convs(), tactic_sources=["-ATEN", "+CUDNN"])) == ["conv2d_nhwc"] * 3


def test_verbose_log_lists_candidates_and_winner(fake_timer, caplog):
    fake_timer.table = {"conv2d_nhwc": 0.0123, "reference": 0.015}
    with caplog.at_level(logging.DEBUG, logger="tensorforge"):
        _build(twin_convs())
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("[Layer] conv2"))
    assert "aten:conv2d_nhwc[weight_layout=channels_last] 0.0123 ms" in line
    assert "aten:reference 0.0150 ms" in line and line.endswith("-> aten:conv2d_nhwc[weight_layout=channels_last]")


def test_tuned_at_profile_opt_shapes(fake_timer):
    seen = []
    fake_timer.table = {"reference": lambda lay, t: seen.append(lay.name) or 1.0}
    prof = tf.OptimizationProfile()
    prof.set_shape("x", (1, 4, 12, 12), (6, 4, 12, 12), (8, 4, 12, 12))
    cfg = tf.BuilderConfig(device="cpu", profiles=[prof])
    g = frontend.load(twin_convs())
    plan, weights = lower(g)
    from tensorforge.builder.builder import _profiles
    plan.profiles, _ = _profiles(plan, cfg)
    info = autotune.shape_info(plan, plan.layers[0], tactics.opt_env(plan), weights)
    assert info.inputs[0]["shape"] == [6, 4, 12, 12] and info.inp(1)["kind"] == "weight"


def test_real_cpu_timing_runs(monkeypatch):
    monkeypatch.setattr(tactics, "TIMER", None)
    eng = _build(twin_convs(hw=6), avg_timing=1)
    assert eng.plan.meta["tactic_selection"]["tactics_timed"] >= 2
    feed = {"x": rand((2, 4, 6, 6), seed=3)}
    got = {k: v.numpy() for k, v in eng.create_execution_context().infer(feed).items()}
    assert_close(got, run_ort(twin_convs(hw=6), feed), 1e-4, 1e-4)
    _ = np
