"""The replica decision: enough replicas for the demand the forecast's upper quantile expects over the
lead time, at the policy's target utilisation of a replica's capacity, with the reason in words and
the utilisation it predicts.

The decision is the estimate only; the policy's guardrails (`live.guardrails`) cap it afterwards, as
the VPA's post-processors cap its recommendation.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from greenmatrix.interval import Interval
from greenmatrix.planning.capacity import replicas_for


class Quantiles(Protocol):
    """A forecast as plain numbers: any forecaster's answer with these three fits (an `Interval` does)."""

    @property
    def p10(self) -> float: ...

    @property
    def p50(self) -> float: ...

    @property
    def p90(self) -> float: ...


class Action(enum.StrEnum):
    SCALE_OUT = "ScaleOut"
    SCALE_IN = "ScaleIn"
    MAINTAIN = "Maintain"


@dataclass(frozen=True)
class ReplicaDecision:
    """Replicas to run, why, and the utilisation of a replica's capacity that follows (p10/p50/p90)."""

    current: int
    desired: int
    action: Action
    reason: str
    utilization: Interval


def action_between(current: int, desired: int) -> Action:
    if desired > current:
        return Action.SCALE_OUT
    if desired < current:
        return Action.SCALE_IN
    return Action.MAINTAIN


def predicted_utilization(demand: Quantiles, capacity: Interval, replicas: int) -> Interval:
    """Share of `replicas`' capacity the demand uses: low demand on fast replicas gives the low end."""
    if replicas <= 0:
        inf = float("inf")
        return Interval(inf, inf, inf)
    return Interval(
        demand.p10 / (replicas * capacity.p90),
        demand.p50 / (replicas * capacity.p50),
        demand.p90 / (replicas * capacity.p10),
    )


def decide_replicas(
    capacity: Interval,
    demand: Quantiles,
    current: int,
    target_utilization: float,
    *,
    anomalous: bool = False,
) -> ReplicaDecision:
    """Replicas for the forecast's p90 of the demand over the lead time (requests/s, the busiest moment
    from now until replicas asked for now would be replaced by the next decision's), each at most
    `target_utilization` of the slow end (p10) of a replica's capacity, so the answer holds when both
    the demand is high and the replica slow.

    `anomalous`: the latest observation was flagged; it never triggers an action on its own, so the
    decision keeps `current` and says so (the forecast should already have kept the point out).
    """
    if current < 0:
        raise ValueError(f"current replicas must be >= 0, got {current}")
    if capacity.p10 <= 0:
        raise ValueError(f"a replica's capacity must be positive, got p10={capacity.p10}")
    needed = replicas_for(max(demand.p90, 0.0), capacity.p10, target_utilization)
    per_replica = f"{capacity.p10:.3g} requests/s each (capacity p10) at {target_utilization:.0%}"
    wanted = f"{needed} replicas serve the forecast p90 of {demand.p90:.3g} requests/s with {per_replica}"
    if anomalous and needed != current:
        desired = current
        reason = f"the latest observation is flagged as an anomaly and acts on nothing alone; {wanted}"
    else:
        desired = needed
        reason = wanted
    return ReplicaDecision(
        current=current,
        desired=desired,
        action=action_between(current, desired),
        reason=reason,
        utilization=predicted_utilization(demand, capacity, desired),
    )
