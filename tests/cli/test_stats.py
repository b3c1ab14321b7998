"""Percentile and statistics rules (float32, as trtexec) against hand-computed values."""
from __future__ import annotations

import numpy as np
import pytest

from tensorforge.cli.forgeexec.stats import Trace, coeff_var, f32_sum, median, percentile_index, summarize, to_timing


@pytest.mark.parametrize("p, n, index", [
    (99, 100, 99),   # float32: (1 - 0.99f) * 100 = 0.99999905 -> exclude 0 -> the max (double would give 98)
    (90, 10, 8),     # float32: (1 - 0.9f) * 10 = 1.0000002 -> exclude 1 (double would give 9)
    (95, 20, 18),    # (1 - 0.95f) * 20 = 1.0000002 -> exclude 1
    (50, 10, 4),     # exclude 5 -> index 4
    (0, 5, 0),       # exclude everything -> clamped to 0
    (100, 5, 4),     # exclude nothing -> the max
    (99, 1, 0),
    (90, 3, 2),      # (1 - 0.9f) * 3 = 0.30000007 -> exclude 0
])
def test_percentile_index(p, n, index):
    assert percentile_index(p, n) == index


def test_percentile_out_of_range():
    with pytest.raises(ValueError):
        percentile_index(100.5, 10)


def test_median_even_and_odd():
    assert median([1.0, 2.0, 4.0]) == 2.0
    assert median([1.0, 2.0, 4.0, 8.0]) == 3.0


def test_float32_sum_is_sequential():
    values = [1e8, 1.0, 1.0, 1.0, 1.0]  # each +1 is lost in float32 (spacing at 1e8 is 8)
    assert f32_sum(values) == np.float32(1e8)
    assert f32_sum(values).dtype == np.float32


def test_summarize_hand_computed():
    r = summarize([4.0, 1.0, 3.0, 2.0, 10.0], [50, 90])
    assert (r.min, r.max, r.mean, r.median) == (1.0, 10.0, 4.0, 3.0)
    # p50, N=5: exclude int(0.5*5)=2 -> index 2 -> 3.0 ; p90: exclude int(0.1f*5)=0 -> index 4 -> 10.0
    assert r.percentiles == [3.0, 10.0]
    # population std of [1,2,3,4,10] is sqrt(10) -> CoV = sqrt(10)/4*100
    assert r.coeff_var == pytest.approx(np.sqrt(10.0) / 4.0 * 100.0, rel=1e-6)


def test_coeff_var_zero_mean_is_inf():
    assert np.isinf(coeff_var([0.0, 0.0], np.float32(0)))


def test_timing_from_trace_in_float32():
    t = Trace(0, 0.1, 0.35, 1.0, 1.25, 1.25, 3.75, 3.75, 4.0)
    it = to_timing(t)
    assert (it.enq, it.h2d, it.compute, it.d2h) == (np.float32(0.35) - np.float32(0.1), 0.25, 2.5, 0.25)
    assert it.latency() == 3.0 and it.latency().dtype == np.float32
