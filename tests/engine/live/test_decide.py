"""The replica decision on its own: replicas for the forecast's p90 at the target utilisation of the
slow end of a replica's capacity, the action it means, its reason, and the utilisation it predicts."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from greenmatrix.interval import Interval
from greenmatrix.live.decide import Action, ReplicaDecision, decide_replicas, predicted_utilization
from greenmatrix.planning.capacity import replicas_for

CAPACITY = Interval(8.0, 10.0, 12.0)


@dataclass(frozen=True)
class PlainForecast:
    """Any forecaster's answer with three numbers fits, not only an Interval."""

    p10: float
    p50: float
    p90: float


def test_scale_out_for_the_upper_quantile_at_the_slow_end_of_capacity() -> None:
    decision = decide_replicas(CAPACITY, PlainForecast(30.0, 40.0, 56.0), current=4, target_utilization=0.7)
    assert decision.desired == replicas_for(56.0, 8.0, 0.7) == 10
    assert decision.action is Action.SCALE_OUT
    assert "56" in decision.reason and "p90" in decision.reason


def test_scale_in_and_maintain() -> None:
    assert decide_replicas(CAPACITY, Interval(1, 2, 3), 5, 0.7).action is Action.SCALE_IN
    kept = decide_replicas(CAPACITY, Interval(10, 15, 16.8), 3, 0.7)
    assert (kept.desired, kept.action) == (3, Action.MAINTAIN)


def test_predicted_utilization_pairs_low_demand_with_fast_replicas() -> None:
    decision = decide_replicas(CAPACITY, Interval(24.0, 40.0, 56.0), 4, 0.7)
    assert decision.utilization == predicted_utilization(Interval(24.0, 40.0, 56.0), CAPACITY, 10)
    assert decision.utilization.p10 == pytest.approx(24.0 / 120.0)
    assert decision.utilization.p50 == pytest.approx(40.0 / 100.0)
    assert decision.utilization.p90 == pytest.approx(56.0 / 80.0)


def test_an_anomalous_point_never_triggers_an_action_alone() -> None:
    for current in (1, 4, 30):
        decision = decide_replicas(CAPACITY, Interval(30, 40, 56), current, 0.7, anomalous=True)
        assert isinstance(decision, ReplicaDecision)
        assert (decision.desired, decision.action) == (current, Action.MAINTAIN)
        assert "anomaly" in decision.reason


def test_zero_demand_keeps_one_replica_and_bad_inputs_are_refused() -> None:
    assert decide_replicas(CAPACITY, Interval(0, 0, 0), 3, 0.7).desired == 1
    with pytest.raises(ValueError, match="capacity"):
        decide_replicas(Interval(0, 1, 2), Interval(1, 2, 3), 3, 0.7)
    with pytest.raises(ValueError, match="current"):
        decide_replicas(CAPACITY, Interval(1, 2, 3), -1, 0.7)
