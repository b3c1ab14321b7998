"""The level-0 CPU plan of every zoo model is byte-identical to its golden file (refactors keep it)."""
import os

import pytest

from .make_golden import MODELS, PRECISIONS, path_of, plan_text

SMALL = [m for m in MODELS if m.endswith("_small")]
FULL = [m for m in MODELS if not m.endswith("_small")]


def _check(model, precision):
    with open(path_of(model, precision)) as f:
        want = f.read()
    got = plan_text(model, precision)
    assert got == want, f"{model} {precision}: plan differs from {os.path.basename(path_of(model, precision))}"


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("model", SMALL)
def test_small_plans(model, precision):
    _check(model, precision)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("model", FULL)
def test_full_plans(model, precision):
    _check(model, precision)
