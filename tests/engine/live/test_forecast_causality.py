"""Causality over generated series: irregular steps, jitter, gaps and NaN never let a later row leak back."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from greenmatrix.live.forecast import forecast_series
from greenmatrix.live.observations import Series


@st.composite
def series_and_cut(draw: st.DrawFn) -> tuple[Series, int, float]:
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    step = draw(st.sampled_from([60.0, 300.0, 600.0]))
    size = draw(st.integers(40, 400))
    gaps = rng.choice([1, 1, 1, 1, 3, 12], size=size)
    jitter = rng.normal(0, 0.1 * step, size) if draw(st.booleans()) else np.zeros(size)
    times = np.unique(np.round(np.cumsum(gaps * step) + jitter, 1))
    values = np.abs(80 + 30 * np.sin(2 * np.pi * times / 86_400) + rng.normal(0, 8, len(times)))
    values[rng.random(len(times)) < 0.05] = np.nan
    cut = draw(st.integers(2, len(times) - 1))
    horizon = draw(st.sampled_from([30.0, 600.0, 3600.0, 5000.0]))
    return Series(times, values), cut, horizon


@settings(max_examples=25, deadline=None)
@given(series_and_cut())
def test_cutting_after_any_row_leaves_earlier_rows_unchanged(case: tuple[Series, int, float]) -> None:
    series, cut, horizon = case
    whole = forecast_series(series, horizon)
    part = forecast_series(Series(series.timestamps[:cut], series.values[:cut]), horizon)
    for name in ("p10", "p50", "p90"):
        np.testing.assert_array_equal(getattr(part, name), getattr(whole, name)[:cut])
    assert part.reasons == whole.reasons[:cut]
