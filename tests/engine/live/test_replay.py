"""The replay: the ready-capacity model, the HPA algorithm, the static peak, GreenMatrix under the
guardrails, and causality (cutting the trace after any row leaves earlier rows' answers unchanged)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenmatrix.api.optimizationpolicy import Scaling
from greenmatrix.interval import Interval
from greenmatrix.live.replay import (
    RecentPeak,
    Trace,
    WalkForwardForecast,
    greenmatrix_replicas,
    hpa_replicas,
    outcome,
    replay,
    static_replicas,
)

LOOSE = Scaling(max_replicas=100, max_scale_up_step=100, max_scale_down_step=100, cooldown="0s")


def minutes(values: list[float]) -> Trace:
    return Trace(np.arange(len(values)) * 60.0, np.array(values, float))


def test_replicas_asked_for_serve_after_the_startup_and_leave_at_once() -> None:
    trace = minutes([0.5, 1.5, 1.5, 1.5, 1.5])
    asked = np.array([1, 1, 2, 2, 2])
    late = outcome("x", trace, asked, capacity=1.0, startup=90.0)
    # Asked at 120 s, ready at 210 s: rows 1 and 2 and the first half of row 3 are short.
    assert late.overload_minutes == pytest.approx(2.5)
    assert late.gpu_hours == pytest.approx(8 / 60)
    assert late.actions == 1
    gone = outcome("x", minutes([2, 2]), np.array([3, 1]), capacity=1.0, startup=600.0)
    assert gone.overload_minutes == pytest.approx(1.0)
    doubled = outcome("x", trace, asked, capacity=1.0, startup=90.0, gpus_per_replica=2)
    assert doubled.gpu_hours == pytest.approx(2 * late.gpu_hours)


def test_gaps_are_not_counted_as_overload() -> None:
    trace = minutes([1.0, math.nan, 5.0])
    assert outcome("x", trace, np.array([1, 1, 1]), 1.0, 60.0).overload_minutes == pytest.approx(1.0)


def test_hpa_follows_the_previous_interval_with_tolerance_and_stabilization() -> None:
    demand = [7.0] * 5 + [14.0] * 5 + [7.7] * 10
    asked = hpa_replicas(minutes(demand), capacity=1.0, startup=60.0, scaling=LOOSE, target=0.7)
    assert asked[0] == math.ceil(7.0 / 0.7)  # the first known demand at the policy's target
    assert list(asked[5:7]) == [10, 20]  # reacts one interval later
    # Back down to 7.7 from 20 replicas is a scale-in, held for the 300 s window, then ceil(7.7 / 0.7).
    assert list(asked[10:17]) == [20, 20, 20, 20, 20, 11, 11]


def test_static_is_the_peak() -> None:
    assert set(static_replicas(minutes([1.0, 9.5, math.nan, 3.0]), 2.0)) == {5}


def test_greenmatrix_scales_ahead_of_a_daily_rise() -> None:
    day = np.arange(2 * 144) * 600.0
    demand = 50 + 40 * np.sin(2 * np.pi * day / 86400)
    trace = Trace(day, demand)
    ours = outcome("gm", trace, greenmatrix_replicas(trace, 5.0, 180.0, LOOSE), 5.0, 180.0)
    hpa = outcome("hpa", trace, hpa_replicas(trace, 5.0, 180.0, LOOSE, 0.9), 5.0, 180.0)
    assert ours.overload_minutes < hpa.overload_minutes


def test_an_anomalous_row_is_kept_out_and_triggers_nothing() -> None:
    demand = [10.0] * 8 + [60.0] + [10.0] * 8
    trace = minutes(demand)
    flags = np.array([value > 50 for value in demand])
    kept = greenmatrix_replicas(trace, 1.0, 60.0, LOOSE, anomalous=flags)
    assert set(kept[8:]) == {kept[7]}
    assert max(greenmatrix_replicas(trace, 1.0, 60.0, LOOSE)) > kept[0]


def test_recent_peak_stand_in() -> None:
    times = np.arange(10) * 600.0
    values = np.array([1.0, 2, 3, 4, 5, 6, 7, 8, 9, 3])
    guess = RecentPeak(margin=1.0).peak(times, values, 6000.0, 780.0)
    assert guess == Interval(3.0, 3.0, 9.0)
    assert RecentPeak().peak(times[:0], values[:0], 0.0, 780.0) is None


def test_bad_traces_are_refused() -> None:
    with pytest.raises(ValueError, match="increasing"):
        Trace(np.array([0.0, 0.0]), np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="negative"):
        Trace(np.array([0.0, 60.0]), np.array([1.0, -1.0]))


@st.composite
def traces(draw: st.DrawFn) -> tuple[Trace, float, float]:
    level = st.one_of(st.floats(0.0, 300.0), st.just(math.nan))
    values = draw(st.lists(level, min_size=2, max_size=60))
    # Regular steps mostly, sometimes irregular ones (a late scrape, a missing row).
    steps = draw(st.sampled_from([[60.0], [600.0], [30.0, 60.0, 90.0, 600.0]]))
    times = np.cumsum([draw(st.sampled_from(steps)) for _ in values])
    capacity = draw(st.floats(1.0, 40.0))
    startup = draw(st.sampled_from([0.0, 90.0, 180.0, 700.0]))
    return Trace(times, np.array(values)), capacity, startup


@st.composite
def scalings(draw: st.DrawFn) -> Scaling:
    low = draw(st.integers(0, 5))
    return Scaling(
        min_replicas=low,
        max_replicas=draw(st.integers(max(low, 1), 60)),
        max_scale_up_step=draw(st.integers(1, 10)),
        max_scale_down_step=draw(st.integers(1, 10)),
        cooldown=draw(st.sampled_from(["0s", "1m", "5m", "15m"])),
        scale_down_stabilization=draw(st.sampled_from(["0s", "5m", "30m"])),
        target_utilization=draw(st.floats(0.3, 1.0)),
    )


@settings(max_examples=60, deadline=None)
@given(case=traces(), scaling=scalings(), cut=st.integers(1, 59))
def test_replay_is_causal_and_within_the_guardrails(
    case: tuple[Trace, float, float], scaling: Scaling, cut: int
) -> None:
    trace, capacity, startup = case
    cut = min(cut, len(trace.demand))
    head = Trace(trace.timestamps[:cut], trace.demand[:cut])
    # The first known demand sets the replicas running before the trace: cut where it is known.
    if not np.isfinite(head.demand).any():
        return
    ours = greenmatrix_replicas(trace, capacity, startup, scaling)
    hpa = hpa_replicas(trace, capacity, startup, scaling)
    assert np.array_equal(greenmatrix_replicas(head, capacity, startup, scaling), ours[:cut])
    assert np.array_equal(hpa_replicas(head, capacity, startup, scaling), hpa[:cut])
    # A row's answer is decided from the rows before it: changing it and what follows changes nothing.
    known = int(np.argmax(np.isfinite(trace.demand)))
    if known < cut - 1:
        changed = trace.demand.copy()
        changed[cut - 1 :] = np.nan_to_num(changed[cut - 1 :], nan=5.0) * 2 + 1
        other = Trace(trace.timestamps, changed)
        assert np.array_equal(greenmatrix_replicas(other, capacity, startup, scaling)[:cut], ours[:cut])
        assert np.array_equal(hpa_replicas(other, capacity, startup, scaling)[:cut], hpa[:cut])
    assert ours.min() >= scaling.min_replicas and ours.max() <= scaling.max_replicas
    steps = np.diff(ours)
    assert steps.max(initial=0) <= scaling.max_scale_up_step
    assert -steps.min(initial=0) <= scaling.max_scale_down_step


class ConstantAfter:
    """A forecaster that knows nothing before `ready` seconds, then always says `level`."""

    def __init__(self, ready: float, level: float) -> None:
        self.ready, self.level = ready, level

    def peak(self, timestamps: np.ndarray, values: np.ndarray, now: float, lead: float) -> Interval | None:
        return Interval(self.level, self.level, self.level) if now >= self.ready else None


def test_the_stand_in_answers_while_a_forecaster_warms_up() -> None:
    trace = minutes([10.0] * 10)
    asked = greenmatrix_replicas(trace, 1.0, 60.0, LOOSE, forecaster=ConstantAfter(300.0, 30.0))
    stand_in = greenmatrix_replicas(trace, 1.0, 60.0, LOOSE)
    assert list(asked[:5]) == list(stand_in[:5])
    assert set(asked[5:]) == {math.ceil(30.0 / LOOSE.target_utilization)}


class Recording:
    """Remembers the lead time each decision asked about; knows nothing."""

    def __init__(self) -> None:
        self.leads: list[float] = []

    def peak(self, timestamps: np.ndarray, values: np.ndarray, now: float, lead: float) -> Interval | None:
        self.leads.append(lead)
        return None


def test_the_lead_time_is_known_when_the_decision_is_made() -> None:
    times = np.array([0.0, 60.0, 120.0, 600.0, 660.0])
    full, cut = Recording(), Recording()
    greenmatrix_replicas(Trace(times, np.ones(5)), 1.0, 180.0, LOOSE, forecaster=full)
    greenmatrix_replicas(Trace(times[:3], np.ones(3)), 1.0, 180.0, LOOSE, forecaster=cut)
    assert full.leads[:3] == cut.leads == [180.0, 240.0, 240.0]


def test_replay_judges_the_three_strategies_alike() -> None:
    day = np.arange(144) * 600.0
    trace = Trace(day, 50 + 40 * np.sin(2 * np.pi * day / 86400))
    result = replay(trace, 5.0, 180.0, LOOSE, hpa_target=0.6, gpus_per_replica=2)
    assert np.array_equal(result.greenmatrix.replicas, greenmatrix_replicas(trace, 5.0, 180.0, LOOSE))
    assert np.array_equal(result.hpa.replicas, hpa_replicas(trace, 5.0, 180.0, LOOSE, 0.6))
    assert result.static.overload_minutes == 0
    assert result.static.gpu_hours == pytest.approx(2 * 18 * 24)


def test_with_the_demand_forecaster_cutting_or_changing_later_rows_changes_nothing_before() -> None:
    rng = np.random.default_rng(7)
    times = np.arange(3 * 144) * 600.0
    demand = (50 + 40 * np.sin(2 * np.pi * times / 86400)) * rng.lognormal(0, 0.1, len(times))
    demand[[100, 101, 250]] = np.nan
    trace = Trace(times, demand)
    asked = greenmatrix_replicas(trace, 5.0, 180.0, LOOSE)
    forecast = WalkForwardForecast(trace, 180.0)
    answered = [forecast.peak(times[:i], demand[:i], times[i], 780.0) for i in range(len(times))]
    assert sum(a is not None for a in answered) > len(times) // 2  # the forecaster does decide
    for cut in (40, 160, 300, 431):
        head = Trace(times[:cut], demand[:cut])
        assert np.array_equal(greenmatrix_replicas(head, 5.0, 180.0, LOOSE), asked[:cut])
        changed = demand.copy()
        changed[cut - 1 :] *= 3
        other = greenmatrix_replicas(Trace(times, changed), 5.0, 180.0, LOOSE)
        assert np.array_equal(other[:cut], asked[:cut])
