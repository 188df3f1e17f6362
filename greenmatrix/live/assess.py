"""One live evaluation of a workload: judge the new observations for anomalies, keep the flagged ones
out, forecast the demand over the lead time, size the replicas from a replica's capacity, then let
the policy's guardrails have the last word.

The operator keeps one `WorkloadState` per workload and passes it back at the next evaluation; it
holds what each step has learnt (`AnomalyState`, one compacted `ForecastState` per slot of the lead
time, the guardrails' memory), so an evaluation costs the new rows, not the history, and the state
stays bounded: the forecasts keep at most `forecast.HISTORY_KEPT` plus `HISTORY_SLACK` of rows.
Nothing here reads a clock: `now` and the rows are arguments, and the answers are those of the
whole-history functions (`detect_anomalies`, `forecast`) on the same rows (for `forecast`, the rows
since the state last started over).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from greenmatrix.interval import Interval
from greenmatrix.live.anomalies import Anomalies, AnomalyKind, AnomalyState, clean_series
from greenmatrix.live.decide import ReplicaDecision, decide_replicas
from greenmatrix.live.forecast import Forecast, ForecastState, advance_together, within_history
from greenmatrix.live.guardrails import Guardrails, GuardrailState, guarded_decision


@dataclass(frozen=True)
class WorkloadState:
    """What one workload's evaluations carry from one to the next."""

    anomalies: AnomalyState
    forecasts: tuple[ForecastState, ...]
    guardrails: GuardrailState

    @classmethod
    def start(cls, step: float, startup: float) -> WorkloadState:
        """A workload observed every `step` seconds whose replicas serve `startup` seconds after they are
        asked for: its lead time is the start-up plus one step, forecast slot by slot."""
        slots = math.ceil((startup + step) / step - 1e-9)
        forecasts = tuple(ForecastState.empty((j + 1) * step) for j in range(slots))
        return cls(AnomalyState.empty(), forecasts, GuardrailState())


@dataclass(frozen=True)
class Assessment:
    """The decision (None while the forecast warms up), the demand it was sized for, the new rows'
    anomaly answers, and the state to pass to the next evaluation."""

    decision: ReplicaDecision | None
    demand: Interval | None
    anomalies: Anomalies
    state: WorkloadState
    estimated: int | None = None
    """Replicas the demand needs before the guardrails."""
    limited_by: tuple[str, ...] = ()
    """The guardrails that changed the estimate."""
    reason: str = ""
    """Why there is no decision yet (the forecast's warm-up)."""


def assess(
    state: WorkloadState,
    timestamps: np.ndarray,
    values: np.ndarray,
    now: float,
    capacity: Interval,
    current: int,
    target_utilization: float,
    guardrails: Guardrails,
) -> Assessment:
    """Judge the new rows, forecast from the clean ones, decide on the busiest moment of the lead time."""
    detector, judged = state.anomalies.advance(timestamps, values)
    forecasts = within_history(advance_together(state.forecasts, timestamps, clean_series(values, judged)))
    answers = [each.forecast(now) for each in forecasts]
    demand = busiest(answers)
    # Only the next advance reads the states again: what only a forecast reads need not be kept.
    forecasts = tuple(each.compact() for each in forecasts)
    if demand is None:
        waiting = next((each.reason for each in answers if each.interval is None), "no forecast yet")
        unchanged = WorkloadState(detector, forecasts, state.guardrails)
        return Assessment(None, None, judged, unchanged, reason=waiting)
    # A level shift is demand moving (the forecast follows it); only a point kept out of the forecast
    # (a spike, a counter reset) is one that must not act alone.
    shift = AnomalyKind.LEVEL_SHIFT.value
    latest = bool(len(judged.anomaly) and judged.anomaly[-1] and judged.kind[-1] != shift)
    decision = decide_replicas(capacity, demand, current, target_utilization, anomalous=latest)
    guarded = guardrails.apply(decision.desired, current, state.guardrails, now)
    decided = guarded_decision(decision, guarded, demand, capacity)
    limits = tuple(limit.step for limit in guarded.limiting)
    state = WorkloadState(detector, forecasts, guarded.state)
    return Assessment(decided, demand, judged, state, estimated=decision.desired, limited_by=limits)


def busiest(forecasts: list[Forecast]) -> Interval | None:
    """The highest p10, p50 and p90 over the lead time's forecasts (None if none is warm yet)."""
    ready = [each.interval for each in forecasts if each.interval is not None]
    if not ready:
        return None
    return Interval(*(max(getattr(each, name) for each in ready) for name in ("p10", "p50", "p90")))
