"""One live evaluation from carried state decides what the whole-history functions decide."""

from __future__ import annotations

import numpy as np

from greenmatrix.api.optimizationpolicy import Scaling
from greenmatrix.interval import Interval
from greenmatrix.live.anomalies import AnomalyKind, clean_series, detect_anomalies
from greenmatrix.live.assess import WorkloadState, assess, busiest
from greenmatrix.live.decide import decide_replicas
from greenmatrix.live.forecast import HISTORY_KEPT, HISTORY_SLACK, forecast
from greenmatrix.live.guardrails import guardrails_of
from greenmatrix.live.observations import Series

CAPACITY = Interval(9.0, 10.0, 11.0)


def demand_series(days: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    slots = np.arange(int(days * 1440))
    slots = slots[rng.random(len(slots)) > 0.02]
    times = slots * 60.0 + 1_700_000_000.0
    values = 40 + 25 * np.sin(2 * np.pi * times / 86_400) + rng.normal(0, 3, len(times))
    values[rng.random(len(times)) < 0.004] *= 6
    values[rng.random(len(times)) < 0.02] = np.nan
    return times, np.abs(values)


def test_each_evaluation_decides_on_the_whole_history_demand() -> None:
    times, values = demand_series(2.0, 11)
    rails = guardrails_of(Scaling(max_replicas=50))
    state = WorkloadState.start(60.0, 180.0)
    decided, done = 0, 0
    for cut in (40, 1500, 1505, 1510, 1800, len(times)):
        now = float(times[cut - 1])
        outcome = assess(state, times[done:cut], values[done:cut], now, CAPACITY, 4, 0.7, rails)
        state, done = outcome.state, cut
        judged = detect_anomalies(times[:cut], values[:cut])
        np.testing.assert_array_equal(outcome.anomalies.score, judged.score[-len(outcome.anomalies.score) :])
        history = Series(times[:cut], clean_series(values[:cut], judged))
        expected = busiest([forecast(history, now, h) for h in (60.0, 120.0, 180.0, 240.0)])
        assert outcome.demand == expected
        if expected is not None:
            held = bool(judged.anomaly[-1]) and judged.kind[-1] != AnomalyKind.LEVEL_SHIFT.value
            wanted = decide_replicas(CAPACITY, expected, 4, 0.7, anomalous=held).desired
            assert outcome.decision is not None
            # The guardrails may limit the step; the estimate they were given is the whole-history one.
            assert (
                outcome.decision.reason.startswith(f"{wanted} replicas serve")
                or "anomaly" in outcome.decision.reason
            )
            decided += 1
    assert decided >= 3


def test_warming_up_decides_nothing() -> None:
    times, values = demand_series(0.02, 12)
    outcome = assess(
        WorkloadState.start(60.0, 180.0),
        times,
        values,
        float(times[-1]),
        CAPACITY,
        2,
        0.7,
        guardrails_of(Scaling()),
    )
    assert outcome.decision is None and outcome.demand is None


def test_a_level_shift_is_demand_and_scales_out() -> None:
    """A step up that persists is flagged as a level shift; the forecast follows it, and so does the
    decision: holding `current` for every flagged point would block scale-out through a real surge."""
    rng = np.random.default_rng(5)
    times = 1_700_000_000.0 + 60.0 * np.arange(900)
    values = 40 + rng.normal(0, 1.0, 900)
    values[880:] += 60  # demand jumps by 150% and stays
    rails = guardrails_of(Scaling(max_replicas=50, max_scale_up_step=50))
    out = assess(WorkloadState.start(60.0, 180.0), times, values, float(times[-1]), CAPACITY, 6, 0.7, rails)
    judged = detect_anomalies(times, values)
    assert judged.anomaly[-1] and judged.kind[-1] == AnomalyKind.LEVEL_SHIFT.value
    assert out.decision is not None and out.decision.desired > 6 and "anomaly" not in out.decision.reason


def test_the_carried_state_stays_bounded_over_weeks_and_still_decides() -> None:
    """A workload watched for a month: its forecasts start over from the last HISTORY_KEPT once they
    hold HISTORY_SLACK more, so the state no longer grows with the time it has been watched."""
    step = 600.0
    times = 1_700_000_000.0 + step * np.arange(int(32 * 86_400 / step))
    values = 40 + 25 * np.sin(2 * np.pi * times / 86_400) + np.random.default_rng(9).normal(0, 2, len(times))
    rails = guardrails_of(Scaling(max_replicas=50))
    state, done, spans, decided = WorkloadState.start(step, 1200.0), 0, [], 0
    for cut in range(144, len(times) + 1, 144):  # an evaluation a day
        out = assess(state, times[done:cut], values[done:cut], float(times[cut - 1]), CAPACITY, 5, 0.7, rails)
        state, done = out.state, cut
        spans.append(state.forecasts[0].timestamps[-1] - state.forecasts[0].timestamps[0])
        decided += out.decision is not None
    assert max(spans) <= HISTORY_KEPT + HISTORY_SLACK
    assert min(spans[20:]) >= HISTORY_KEPT - step  # started over, not emptied
    assert all(len(f.timestamps) == len(state.forecasts[0].timestamps) for f in state.forecasts)
    assert decided == len(spans)  # every evaluation decides, across the restarts too
