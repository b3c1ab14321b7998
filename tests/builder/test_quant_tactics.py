"""The "no regression" rule as data: a quantized layer's FP16 form is a candidate of the same layer,
kept only when it times faster; obeying Q/DQ strictly drops it."""
from __future__ import annotations

import numpy as np
import pytest

from tensorforge import Builder, BuilderConfig
from tests.passes.qdq_models import I8, conv_block


def _build(**kw):
    cfg = BuilderConfig(device="cpu", opt_level=3, **kw)
    return Builder(cfg).build(conv_block(I8, residual=True, out_q=True))


def _qconv(engine):
    return next(l for l in engine.plan.layers if l.type == "fused.QConv")


@pytest.mark.parametrize("table,expected", [({"fp16_form": 0.5, "reference": 1.0}, "fp16_form"),
                                            ({"fp16_form": 2.0, "reference": 1.0}, "reference")])
def test_fp16_form_kept_only_when_faster(fake_timer, table, expected):
    fake_timer.table = table
    eng = _build()
    assert _qconv(eng).tactic["name"] == expected
    assert ("fused.QConv" in {n for n, _ in fake_timer.calls} or fake_timer.calls)
    x = {"x": np.random.default_rng(0).uniform(-2, 2, (2, 8, 6, 6)).astype(np.float32)}
    y = eng.create_execution_context().infer(x)
    assert np.isfinite(next(iter(y.values())).float().numpy()).all()


def test_obey_keeps_the_quantized_form(fake_timer):
    fake_timer.table = {"fp16_form": 0.1, "reference": 1.0}
    assert _qconv(_build(precision_constraints="obey")).tactic["name"] == "reference"
