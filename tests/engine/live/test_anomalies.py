"""The causal anomaly filter on synthetic series: each kind found and named, few flags on clean
seasonal noise, scores in [0, 1], and no answer that depends on a later point."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from greenmatrix.live.anomalies import (
    AnomalyKind,
    AnomalySettings,
    anomaly_episodes,
    clean_series,
    detect_anomalies,
)

STEP = 300.0  # five-minute samples, as most of NAB's cloud metrics


def seasonal(n: int, seed: int = 0, noise: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = 1.7e9 + np.arange(n) * STEP
    return t, 100.0 + 30.0 * np.sin(2 * np.pi * t / 86400.0) + rng.normal(0.0, noise, n)


def test_a_spike_is_flagged_as_a_spike() -> None:
    t, v = seasonal(3000)
    v[2500] += 80.0
    found = detect_anomalies(t, v)
    assert found.anomaly[2500]
    assert found.kind[2500] == AnomalyKind.SPIKE
    assert found.score[2500] > 0.9
    assert np.isnan(clean_series(v, found)[2500])


def test_a_level_shift_is_flagged_as_a_level_shift() -> None:
    t, v = seasonal(3000)
    v[2500:] += 25.0
    found = detect_anomalies(t, v)
    onset = np.flatnonzero(found.anomaly[2500:2530])
    assert len(onset), "the shift's onset is flagged"
    assert AnomalyKind.LEVEL_SHIFT in set(found.kind[2500:2530])
    assert not found.anomaly[2400:2500].any()
    # After the first day (before it, no seasonal view exists and a steep ramp can read as a shift).
    episodes = [e for e in anomaly_episodes(t, found) if e.start > t[288] and e.kind != AnomalyKind.GAP]
    assert [e.kind for e in episodes] == [AnomalyKind.LEVEL_SHIFT]
    assert t[2500] <= episodes[0].start <= t[2510]
    # A confirmed shift is the new normal: a forecaster keeps its points by default.
    shifted = found.kind == AnomalyKind.LEVEL_SHIFT
    assert np.isfinite(clean_series(v, found)[shifted]).all()
    assert np.isnan(clean_series(v, found, keep_level_shifts=False)[shifted]).all()


def test_a_counter_reset_is_flagged_and_the_rate_is_what_is_judged() -> None:
    rng = np.random.default_rng(3)
    n = 1000
    t = 1.7e9 + np.arange(n) * 60.0
    counter = np.cumsum(rng.poisson(50, n)).astype(float)
    counter[700:] -= counter[699]  # the process restarted: counting begins again from zero
    found = detect_anomalies(t, counter, AnomalySettings(counter=True))
    assert found.anomaly[700]
    assert found.kind[700] == AnomalyKind.COUNTER_RESET
    assert found.score[700] == 1.0
    assert found.anomaly.sum() <= 3, "a steadily rising counter is not a string of level shifts"
    # Read as a plain gauge the same series has no reset, only a drop.
    assert AnomalyKind.COUNTER_RESET not in set(detect_anomalies(t, counter).kind)


def test_gaps_are_reported_but_not_flagged() -> None:
    t, v = seasonal(2000)
    v[1500:1510] = np.nan
    t = np.concatenate((t[:1800], t[1800:] + 3600.0))  # an hour with no samples
    found = detect_anomalies(t, v)
    # The missing values and the first value after them (the step from the last one is long).
    assert (found.kind[1500:1511] == AnomalyKind.GAP).all()
    assert found.kind[1800] == AnomalyKind.GAP
    assert not found.anomaly[1500:1510].any() and not found.anomaly[1800]
    assert (found.score[1500:1510] == 0.0).all()
    gaps = [e for e in anomaly_episodes(t, found) if e.kind == AnomalyKind.GAP]
    assert [(e.start, e.end) for e in gaps] == [(t[1499], t[1510]), (t[1799], t[1800])]


def test_clean_seasonal_noise_gives_few_false_flags() -> None:
    days = 14
    t, v = seasonal(days * 288, seed=7)
    found = detect_anomalies(t, v)
    episodes = [e for e in anomaly_episodes(t, found) if e.kind != AnomalyKind.GAP]
    assert len(episodes) / days <= 0.5
    # Once a day has been seen, the ramps are judged against the previous days: nothing at all.
    assert [e for e in episodes if e.start >= t[288]] == []


def test_episodes_merge_nearby_flags_and_carry_their_peak() -> None:
    t, v = seasonal(3000)
    v[2500] += 60.0
    v[2503] += 90.0  # fifteen minutes later: the same episode
    v[2800] += 70.0
    found = detect_anomalies(t, v)
    spikes = [e for e in anomaly_episodes(t, found, merge_within=1800.0) if e.kind == AnomalyKind.SPIKE]
    assert [(e.start, e.end) for e in spikes] == [(t[2500], t[2503]), (t[2800], t[2800])]
    # The first spike raises the bar the second is judged by; the episode keeps the higher score.
    assert spikes[0].peak_score == found.score[2500:2504].max()


series_strategy = st.lists(
    st.one_of(st.floats(-1e3, 1e3, allow_nan=False), st.just(float("nan"))), min_size=1, max_size=160
)


@settings(max_examples=60, deadline=None)
@given(values=series_strategy, steps=st.lists(st.sampled_from([60.0, 60.0, 60.0, 300.0]), min_size=160))
def test_scores_are_in_the_unit_interval_and_flags_match_them(
    values: list[float], steps: list[float]
) -> None:
    v = np.array(values)
    t = np.cumsum(steps[: len(v)])
    for cfg in (
        AnomalySettings(window=8, min_history=4),
        AnomalySettings(window=8, min_history=4, counter=True),
    ):
        found = detect_anomalies(t, v, cfg)
        assert ((found.score >= 0.0) & (found.score <= 1.0)).all()
        assert (found.anomaly == (found.score >= 0.5)).all()
        assert not found.anomaly[np.isnan(v)].any()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), cut=st.integers(1, 699), counter=st.booleans())
def test_cutting_the_series_leaves_earlier_answers_unchanged(seed: int, cut: int, counter: bool) -> None:
    rng = np.random.default_rng(seed)
    n = 700
    t = np.cumsum(rng.choice([60.0, 60.0, 60.0, 240.0], n))
    v = rng.standard_t(3, n) * 5 + np.where(np.arange(n) > 400, 20.0, 0.0)
    if counter:
        v = np.cumsum(np.abs(v))
        v[500:] -= v[499]
    v[rng.random(n) < 0.03] = np.nan
    # Short windows and a short period so that every stage (calibration, seasons) is exercised.
    cfg = AnomalySettings(window=16, min_history=6, calibration=50, season=3600.0, counter=counter)
    full = detect_anomalies(t, v, cfg)
    part = detect_anomalies(t[:cut], v[:cut], cfg)
    np.testing.assert_array_equal(part.score, full.score[:cut])
    np.testing.assert_array_equal(part.anomaly, full.anomaly[:cut])
    np.testing.assert_array_equal(part.kind, full.kind[:cut])
    np.testing.assert_array_equal(part.level, full.level[:cut])
