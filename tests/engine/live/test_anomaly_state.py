"""The carried anomaly state judges new points exactly as the whole-history detector does."""

from __future__ import annotations

import numpy as np
import pytest
from series_fixtures import daily_series

from greenmatrix.live.anomalies import Anomalies, AnomalySettings, AnomalyState, detect_anomalies


def bursty_series(days: float, step: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A daily cycle with noise, spikes, a level shift, missing values and missing steps."""
    times, values = daily_series(days, step, seed, gap_hours=2, burst_share=0.005, burst_factor=5, shift=40)
    return times, np.round(values, 1)


def in_chunks(times: np.ndarray, values: np.ndarray, cuts: list[int], settings: AnomalySettings) -> Anomalies:
    state, parts, done = AnomalyState.empty(settings), [], 0
    for cut in cuts:
        state, part = state.advance(times[done:cut], values[done:cut])
        parts.append(part)
        done = cut
    return Anomalies(
        *(np.concatenate([getattr(p, name) for p in parts]) for name in Anomalies.__annotations__)
    )


@pytest.mark.parametrize(
    ("step", "counter", "seed"), [(60.0, False, 1), (300.0, False, 2), (60.0, True, 3), (600.0, True, 4)]
)
def test_advancing_in_chunks_gives_the_whole_history_answers(step: float, counter: bool, seed: int) -> None:
    times, values = bursty_series(5.0, step, seed)
    if counter:
        values = np.cumsum(np.nan_to_num(values))
        values[len(values) // 2 :: 397] = 0.0
    settings = AnomalySettings(counter=counter)
    rows = len(times)
    # Single points while warming up, then uneven chunks across the gap, the shift and the calibration.
    cuts = [
        1,
        2,
        3,
        11,
        12,
        13,
        60,
        61,
        rows // 3,
        rows // 3 + 5,
        rows // 2,
        *range(max(rows // 2 + 5, rows - 400), rows, 5),
    ]
    whole = detect_anomalies(times, values, settings)
    pieces = in_chunks(times, values, [*cuts, rows], settings)
    assert whole.anomaly.any()
    np.testing.assert_array_equal(pieces.score, whole.score)
    np.testing.assert_array_equal(pieces.anomaly, whole.anomaly)
    np.testing.assert_array_equal(pieces.level, whole.level)
    assert list(pieces.kind) == list(whole.kind)


def test_an_advance_leaves_the_state_it_came_from_unchanged() -> None:
    times, values = bursty_series(2.0, 60.0, 5)
    half = len(times) // 2
    state, _ = AnomalyState.empty().advance(times[:half], values[:half])
    _, once = state.advance(times[half:], values[half:])
    _, again = state.advance(times[half:], values[half:])
    np.testing.assert_array_equal(once.score, again.score)


def test_short_warm_up_settings_still_match_point_by_point() -> None:
    times, values = bursty_series(1.0, 300.0, 6)
    settings = AnomalySettings(min_history=2, window=5, shift_run=6, calibration=20, seasons=1)
    whole = detect_anomalies(times, values, settings)
    pieces = in_chunks(times, values, list(range(1, len(times) + 1)), settings)
    np.testing.assert_array_equal(pieces.score, whole.score)
    assert list(pieces.kind) == list(whole.kind)
