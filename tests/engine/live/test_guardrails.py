"""Each guardrail step alone, then the policy's chain: what it limits, why, and the state it hands back."""

from __future__ import annotations

import pytest

from greenmatrix.api.meta import duration_seconds
from greenmatrix.api.optimizationpolicy import OptimizationPolicySpec, Scaling
from greenmatrix.interval import Interval
from greenmatrix.live.decide import Action, decide_replicas
from greenmatrix.live.guardrails import (
    Bounds,
    Cooldown,
    GuardrailState,
    Pause,
    Proposal,
    Stabilization,
    StepLimits,
    guarded_decision,
    guardrails_of,
)
from greenmatrix.policy import scaling_of

NOW = 10_000.0


def proposal(current: int, desired: int) -> Proposal:
    return Proposal(now=NOW, current=current, desired=desired, replicas=desired)


def test_durations_as_the_policy_writes_them() -> None:
    assert duration_seconds("5m") == 300
    assert duration_seconds("1h30m") == 5400
    assert duration_seconds("250ms") == 0.25
    assert duration_seconds("0s") == 0
    for bad in ("", "5", "5x", "m5", "5m "):
        with pytest.raises(ValueError, match="not a duration"):
            duration_seconds(bad)


def test_bounds() -> None:
    step = Bounds(2, 8)
    assert step(proposal(5, 12), GuardrailState()).replicas == 8
    assert step(proposal(5, 0), GuardrailState()).limits[-1].reason == "minReplicas is 2"
    kept = step(proposal(5, 6), GuardrailState())
    assert kept.replicas == 6 and not kept.limits[-1].limited


def test_step_limits() -> None:
    step = StepLimits(up=3, down=1)
    assert step(proposal(5, 12), GuardrailState()).replicas == 8
    limited = step(proposal(5, 1), GuardrailState())
    assert limited.replicas == 4 and limited.limits[-1].limited and "removed" in limited.limits[-1].reason


def test_cooldown() -> None:
    step = Cooldown(300)
    assert step(proposal(5, 9), GuardrailState(last_action_at=NOW - 299)).replicas == 5
    assert step(proposal(5, 9), GuardrailState(last_action_at=NOW - 300)).replicas == 9
    assert step(proposal(5, 9), GuardrailState()).replicas == 9


def test_stabilization_keeps_the_highest_recent_recommendation() -> None:
    step = Stabilization(300)
    state = GuardrailState(recommendations=((NOW - 400, 9), (NOW - 200, 7), (NOW - 100, 4)))
    held = step(proposal(8, 3), state)
    assert held.replicas == 7 and held.limits[-1].limited
    # Never above what runs now, and scaling out is not its business.
    assert step(proposal(6, 3), state).replicas == 6
    assert step(proposal(6, 9), state).replicas == 9


def test_pause() -> None:
    assert Pause(True)(proposal(5, 9), GuardrailState()).replicas == 5
    assert Pause(False)(proposal(5, 9), GuardrailState()).replicas == 9


def test_the_policy_chain_reports_what_limited_it_and_remembers() -> None:
    rails = guardrails_of(Scaling(max_replicas=20, max_scale_up_step=2, cooldown="5m"))
    first = rails.apply(desired=9, current=4, state=GuardrailState(), now=NOW)
    assert first.replicas == 6
    assert [limit.step for limit in first.limiting] == ["StepLimits"]
    assert first.state == GuardrailState(last_action_at=NOW, recommendations=((NOW, 9),))
    second = rails.apply(desired=9, current=6, state=first.state, now=NOW + 60)
    assert second.replicas == 6 and [limit.step for limit in second.limiting] == ["StepLimits", "Cooldown"]
    assert second.state.last_action_at == NOW
    # Recommendations older than the stabilisation window are forgotten.
    later = rails.apply(desired=6, current=6, state=second.state, now=NOW + 400)
    assert later.state.recommendations == ((NOW + 400, 6),)
    assert not later.limited


def test_paused_policy_from_the_spec() -> None:
    spec = OptimizationPolicySpec(paused=True)
    rails = guardrails_of(scaling_of(spec), paused=spec.paused)
    guarded = rails.apply(desired=9, current=3, state=GuardrailState(), now=NOW)
    assert guarded.replicas == 3 and guarded.limiting[-1].step == "Pause"
    assert guarded.state.last_action_at is None


def test_guarded_decision_says_why_and_predicts_for_the_limited_replicas() -> None:
    capacity, demand = Interval(10, 10, 10), Interval(50, 60, 70)
    decision = decide_replicas(capacity, demand, current=2, target_utilization=1.0)
    guarded = guardrails_of(Scaling(max_scale_up_step=3)).apply(decision.desired, 2, GuardrailState(), NOW)
    final = guarded_decision(decision, guarded, demand, capacity)
    assert (final.desired, final.action) == (5, Action.SCALE_OUT)
    assert "limited to 5" in final.reason and "StepLimits" in final.reason
    assert final.utilization.p90 == pytest.approx(70 / 50)
    unlimited = guardrails_of(Scaling(max_scale_up_step=5)).apply(decision.desired, 2, GuardrailState(), NOW)
    assert guarded_decision(decision, unlimited, demand, capacity) is decision
