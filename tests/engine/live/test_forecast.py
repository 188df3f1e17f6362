"""The demand forecast: causal, better than the naive ones on a seasonal series, calibrated, gap-proof."""

from __future__ import annotations

import numpy as np
import pytest

from greenmatrix.live.forecast import forecast, forecast_series
from greenmatrix.live.observations import Series

HOUR = 3600.0
DAY = 86_400.0


def seasonal_series(days: float, step: float, seed: int = 7) -> Series:
    """Requests per second with a daily cycle, a wandering level and noise."""
    rng = np.random.default_rng(seed)
    times = np.arange(0.0, days * DAY, step)
    level = 100 + np.cumsum(rng.normal(0, 0.4, len(times)))
    cycle = 50 * np.sin(2 * np.pi * times / DAY) + 15 * np.sin(4 * np.pi * times / DAY + 1)
    values = np.maximum(0.0, level + cycle + rng.normal(0, 6, len(times)))
    return Series(times, values)


def naive_errors(series: Series, rows: np.ndarray) -> tuple[float, float]:
    values, lead = series.values, round(HOUR / series.step)
    day = round(DAY / series.step)
    last = np.abs(values[rows] - values[rows - lead]).mean()
    seasonal = np.abs(values[rows] - values[rows - day]).mean()
    return float(last), float(seasonal)


def test_beats_both_naive_forecasts_and_covers_80_percent() -> None:
    series = seasonal_series(days=8, step=300)
    result = forecast_series(series, HOUR)
    rows = np.flatnonzero(series.timestamps >= 2 * DAY)
    assert np.isfinite(result.p50[rows]).all()
    ours = np.abs(series.values[rows] - result.p50[rows]).mean()
    last, seasonal = naive_errors(series, rows)
    assert ours < 0.8 * min(last, seasonal), (ours, last, seasonal)
    inside = (series.values[rows] >= result.p10[rows]) & (series.values[rows] <= result.p90[rows])
    assert 0.75 <= inside.mean() <= 0.85
    assert (result.p10[rows] <= result.p50[rows]).all() and (result.p50[rows] <= result.p90[rows]).all()
    assert result.reasons[-1].startswith("daily seasonality; regression")


def test_cutting_the_series_never_changes_an_earlier_row() -> None:
    series = seasonal_series(days=3, step=600, seed=3)
    whole = forecast_series(series, HOUR)
    for cut in (20, 40, 97, 230, 300, len(series) - 1):
        part = forecast_series(Series(series.timestamps[:cut], series.values[:cut]), HOUR)
        for name in ("p10", "p50", "p90"):
            np.testing.assert_array_equal(
                getattr(part, name), getattr(whole, name)[:cut], err_msg=f"{name} at {cut}"
            )
        assert part.reasons == whole.reasons[:cut]


def test_warming_up_says_what_is_missing() -> None:
    series = seasonal_series(days=3, step=600, seed=3)
    result = forecast_series(series, HOUR)
    assert np.isnan(result.p50[:10]).all()
    assert result.reasons[0].startswith("warming up: fewer than 33 rows")
    first = int(np.flatnonzero(np.isfinite(result.p50))[0])
    assert "warming up" in result.reasons[first - 1]
    assert "no seasonality yet" in result.reasons[first]


def test_the_live_forecast_is_the_walk_forward_row() -> None:
    series = seasonal_series(days=3, step=600, seed=5)
    whole = forecast_series(series, HOUR)
    for row in (200, 350, len(series) - 1):
        now = series.timestamps[row] - HOUR
        live = forecast(series, now, HOUR)
        assert live.at == series.timestamps[row] and live.interval is not None
        assert (live.interval.p10, live.interval.p50, live.interval.p90) == pytest.approx(
            (whole.p10[row], whole.p50[row], whole.p90[row])
        )
    assert forecast(series, series.timestamps[5], HOUR).interval is None


def test_gaps_neither_crash_nor_shift_the_forecast() -> None:
    series = seasonal_series(days=6, step=300, seed=11)
    whole = forecast_series(series, HOUR)
    gap = (series.timestamps >= 3.2 * DAY) & (series.timestamps < 3.2 * DAY + 3 * HOUR)
    kept = Series(series.timestamps[~gap], series.values[~gap])
    holed = forecast_series(kept, HOUR)
    later = kept.timestamps >= 4 * DAY
    assert np.isfinite(holed.p50[later]).all()
    # Had the gap shifted the daily phase, the forecasts a day later would be off by hours of cycle.
    same = whole.p50[~gap][later]
    assert np.median(np.abs(holed.p50[later] - same)) < 0.02 * same.mean()
    with_nan = Series(series.timestamps, np.where(gap, np.nan, series.values))
    assert np.isfinite(forecast_series(with_nan, HOUR).p50[series.timestamps >= 4 * DAY]).all()


def test_a_series_without_a_cycle_is_not_given_one() -> None:
    rng = np.random.default_rng(2)
    times = np.arange(0.0, 4 * DAY, 600)
    series = Series(times, 50 + np.cumsum(rng.normal(0, 1, len(times))).clip(-40, None))
    result = forecast_series(series, HOUR)
    assert result.reasons[-1].startswith("no seasonality found")
