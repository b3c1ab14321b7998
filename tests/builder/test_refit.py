"""Refit and weight-stripped engines: refitted weights and outputs equal a fresh build's, bitwise."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tensorforge as tf
from tensorforge import frontend
from tensorforge.builder.refit import RefitError, model_weights
from tensorforge.testing import refit_to, scaled_weights
from tensorforge.errors import EngineFormatError
from tensorforge.ir.tape import Recorder
from tensorforge.ir.tape_codec import TapeError

SMALL = ("resnet50_small", "bert_base_small", "vit_b16_small", "mobilenetv2_small")


def _cfg(**kw):
    return tf.BuilderConfig(opt_level=0, device="cpu", **kw)




def _feed(engine):
    out = {}
    for d in engine.inputs:
        shape = [2 if s == -1 else s for s in d.shape]
        if d.dtype.startswith("int"):
            out[d.name] = torch.ones(shape, dtype=torch.int64 if d.dtype == "int64" else torch.int32)
        else:
            out[d.name] = torch.from_numpy(np.random.default_rng(0).standard_normal(shape).astype(np.float32))
    return out


def _same(a, b):
    fa, fb = _feed(a), _feed(b)
    ra, rb = a.create_execution_context().infer(fa), b.create_execution_context().infer(fb)
    for k in rb:
        assert torch.equal(ra[k], rb[k]), k


@pytest.mark.parametrize("model", SMALL)
@pytest.mark.parametrize("fp16", [False, True])
def test_refit_equals_fresh_build(model, fp16):
    proto = frontend.load_model_proto(f"zoo:{model}")
    new, arrays = scaled_weights(proto)
    engine = tf.Builder(_cfg(refit=True, fp16=fp16)).build(proto)
    ctx = engine.create_execution_context()  # a live context sees the refitted weights
    fresh = tf.Builder(_cfg(fp16=fp16)).build(new)
    r = tf.Refitter(engine)
    assert r.get_missing() == sorted(arrays)
    for k, v in arrays.items():
        r.set_named_weights(k, v)
    assert r.get_missing() == []
    r.refit()
    assert [lay.tactic for lay in engine.plan.layers] == [lay.tactic for lay in fresh.plan.layers]
    for k, w in fresh.weights.items():
        assert torch.equal(engine.weights[k], w), k
    _same(engine, fresh)
    feed = _feed(fresh)
    got, ref = ctx.infer(feed), fresh.create_execution_context().infer(feed)
    assert all(torch.equal(got[k], ref[k]) for k in ref)


def test_stripped_round_trip(tmp_path):
    full = tf.Builder(_cfg()).build("zoo:resnet50_small")
    stripped = tf.Builder(_cfg(strip_weights=True)).build("zoo:resnet50_small")
    path = tmp_path / "s.engine"
    stripped.save(path)
    assert path.stat().st_size < full.size_bytes * 0.2
    loaded = tf.Engine.load(path)
    with pytest.raises(EngineFormatError, match="stripped weights: refit it"):
        loaded.create_execution_context()
    r = tf.Refitter(loaded)
    r.set_weights_from("zoo:resnet50_small")
    r.refit()
    _same(loaded, full)
    loaded.save(tmp_path / "full.engine")  # a refitted engine saves whole
    again = tf.Engine.load(tmp_path / "full.engine")
    _same(again, full)


def test_refusals():
    plain = tf.Builder(_cfg()).build("zoo:mobilenetv2_small")
    with pytest.raises(RefitError, match="not refittable"):
        tf.Refitter(plain)
    engine = tf.Builder(_cfg(refit=True)).build("zoo:mobilenetv2_small")
    r = tf.Refitter(engine)
    name = r.get_all()[0]
    with pytest.raises(RefitError, match=f"'{name}' has shape"):
        r.set_named_weights(name, np.zeros([1, 2, 3], np.float32))
    with pytest.raises(RefitError, match="'nope' is not a refittable"):
        r.set_named_weights("nope", np.zeros([2], np.float32))
    r.set_named_weights(name, model_weights("zoo:mobilenetv2_small")[name])
    with pytest.raises(RefitError, match="missing for refit"):
        r.refit()



def test_layer_or_weight_mismatch_refused(monkeypatch):
    """The fallback replay (a build whose weight calls the tape could not store re-runs the passes)
    is checked against the engine: other layers, or an engine weight of another shape or dtype, are
    refused naming them, and nothing is installed."""
    def unstorable(self, *a):
        raise TapeError("test: unstorable call")
    monkeypatch.setattr(Recorder, "_record", unstorable)
    engine = tf.Builder(_cfg(refit=True)).build("zoo:mobilenetv2_small")
    assert "tape" not in engine.plan.meta["refit"] and "onnx" in engine.plan.meta["refit"]
    arrays = model_weights("zoo:mobilenetv2_small")
    before = {k: w.clone() for k, w in engine.weights.items()}
    first = engine.plan.layers[0]
    saved, first.name = first.name, "renamed"
    r = tf.Refitter(engine)
    r.pending = dict(arrays)
    with pytest.raises(RefitError, match="change the engine's layers \\(first: renamed\\)"):
        r.refit()
    first.name = saved
    name = next(n for n, t in engine.plan.tensors.items() if t.kind == "weight")
    spec = engine.plan.tensors[name]
    saved_shape, spec.shape = spec.shape, [7] + list(spec.shape[1:])
    with pytest.raises(RefitError, match=f"change shape or role with the new weights: {name}"):
        r.refit()
    spec.shape = saved_shape
    assert all(torch.equal(engine.weights[k], w) for k, w in before.items())
    r.refit()


@pytest.mark.parametrize("mode", ["int8", "fp8"])
def test_quantized_bert_refit_equals_fresh_build(mode):
    """A Q/DQ BERT whose Q, K and V projections merged into one quantized GEMM (weights, per-channel
    scales and biases concatenated): refitted with new weights, it equals a fresh build."""
    from tensorforge import zoo
    from tensorforge.quant import quantize
    proto = quantize(zoo.get_model("bert_base_small"), mode, [zoo.random_inputs("bert_base_small", 2, seed=0)], "max")
    new, arrays = scaled_weights(proto)
    engine = tf.Builder(_cfg(refit=True)).build(proto)
    assert sum(lay.type == "fused.QMatMul" for lay in engine.plan.layers) == 8  # 2 blocks x (QKV, out, up, down)
    fresh = tf.Builder(_cfg()).build(new)
    refit_to(engine, arrays, fresh)
    _same(engine, fresh)
