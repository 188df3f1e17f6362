"""The carried forecast state answers exactly what the whole-history forecast answers on the same rows."""

from __future__ import annotations

import pytest
from series_fixtures import daily_series

from greenmatrix.live.forecast import ForecastState, advance_together, forecast, within_history
from greenmatrix.live.observations import Series


def gappy_series(days: float, step: float, seed: int) -> Series:
    """A daily cycle with noise, bursts, missing values and missing steps (a few hours at once)."""
    return Series(*daily_series(days, step, seed, gap_hours=3, burst_share=0.01, burst_factor=4))


@pytest.mark.parametrize(("step", "horizon", "seed"), [(60.0, 60.0, 1), (60.0, 300.0, 2), (300.0, 3600.0, 3)])
def test_advancing_in_chunks_gives_the_whole_history_answer(step: float, horizon: float, seed: int) -> None:
    series = gappy_series(2.5 if step == 60.0 else 6.0, step, seed)
    rows = len(series)
    # Single rows while warming up, then uneven chunks, across the gap and past several checkpoints.
    cuts = [1, 2, 3, 10, 40, 41, 200, rows // 3, rows // 3 + 7, rows // 2, rows - 5, rows]
    state, done, answered = ForecastState.empty(horizon), 0, 0
    for cut in cuts:
        state = state.advance(series.timestamps[done:cut], series.values[done:cut])
        done = cut
        for now in (series.timestamps[cut - 1], series.timestamps[cut - 1] + 0.5 * step):
            if cut < 2:
                assert state.forecast(float(now)).interval is None
                continue
            whole = forecast(Series(series.timestamps[:cut], series.values[:cut]), float(now), horizon)
            assert state.forecast(float(now)) == whole
            answered += whole.interval is not None
    assert answered >= 4


def test_a_state_is_a_value_forecasting_does_not_change_it() -> None:
    series = gappy_series(2.0, 60.0, 4)
    half = len(series) // 2
    state = ForecastState.empty(300.0).advance(series.timestamps[:half], series.values[:half])
    now = float(series.timestamps[half - 1])
    first = state.forecast(now)
    later = state.advance(series.timestamps[half:], series.values[half:])
    assert state.forecast(now) == first
    assert later.forecast(float(series.timestamps[-1])).at == series.timestamps[-1] + 300.0


def test_now_before_the_last_row_is_refused() -> None:
    series = gappy_series(0.1, 60.0, 5)
    state = ForecastState.empty(60.0).advance(series.timestamps, series.values)
    with pytest.raises(ValueError, match="advance"):
        state.forecast(float(series.timestamps[-2]))


def test_horizons_advanced_together_answer_as_each_alone() -> None:
    series = gappy_series(2.0, 60.0, 6)
    horizons = (60.0, 120.0, 180.0, 240.0)
    states, done = tuple(ForecastState.empty(h) for h in horizons), 0
    for cut in (5, 50, len(series) // 2, len(series) // 2 + 5, len(series) - 5, len(series)):
        states = advance_together(states, series.timestamps[done:cut], series.values[done:cut])
        done = cut
        now = float(series.timestamps[cut - 1])
        history = Series(series.timestamps[:cut], series.values[:cut])
        for state, horizon in zip(states, horizons, strict=True):
            assert state.forecast(now) == forecast(history, now, horizon)
    assert all(state.forecast(now).interval is not None for state in states)


def test_a_compacted_state_advances_as_the_whole_one_and_forecasts_only_after() -> None:
    series = gappy_series(2.0, 60.0, 7)
    half = len(series) // 2
    state = ForecastState.empty(120.0).advance(series.timestamps[:half], series.values[:half])
    small = state.compact()
    with pytest.raises(ValueError, match="advance it first"):
        small.forecast(float(series.timestamps[half - 1]))
    rows = (series.timestamps[half : half + 5], series.values[half : half + 5])
    now = float(series.timestamps[half + 4])
    assert small.advance(*rows).forecast(now) == state.advance(*rows).forecast(now)


def test_a_state_keeps_a_bounded_history_and_forecasts_from_the_rows_since_it_started_over() -> None:
    series = gappy_series(4.0, 300.0, 8)
    kept, slack = 86_400.0, 43_200.0
    horizons = (300.0, 600.0)
    states = tuple(ForecastState.empty(h) for h in horizons)
    done, restarts, first = 0, 0, float(series.timestamps[0])
    for cut in range(24, len(series) + 1, 24):  # one evaluation every two hours of rows
        states = within_history(
            advance_together(states, series.timestamps[done:cut], series.values[done:cut]), kept, slack
        )
        done = cut
        last = float(series.timestamps[cut - 1])
        if last - first > kept + slack:
            # Started over: from the first row at most `kept` before the last one.
            first = float(series.timestamps[series.timestamps >= last - kept][0])
            restarts += 1
        assert states[0].timestamps[0] == first
        assert states[0].timestamps[-1] - states[0].timestamps[0] <= kept + slack
        since = series.timestamps >= first
        history = Series(series.timestamps[:cut][since[:cut]], series.values[:cut][since[:cut]])
        for state, horizon in zip(states, horizons, strict=True):
            assert state.forecast(last) == forecast(history, last, horizon)
    assert restarts >= 2
    assert states[0].forecast(float(series.timestamps[-1])).interval is not None
