"""Guarded auto-apply's rules: the gate names the first closed part, the recorded actions forbid what
the guardrails' lost memory no longer can, and a recorded intent settles without repeating or losing
the action. The property test runs the guardrails then `permitted` over generated policies,
estimates and operator restarts (the guardrails' memory lost, the records kept), and checks every
applied change against its own record of the past."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenmatrix.api.meta import duration_seconds
from greenmatrix.api.optimizationpolicy import Scaling
from greenmatrix.live.actuation import (
    ActionRecord,
    Autoscaler,
    GateInputs,
    Verdict,
    gate,
    next_cooldown,
    permitted,
    rollback_to,
    settle,
    within_guardrails,
)
from greenmatrix.live.guardrails import GuardrailState, guardrails_of

OPEN = GateInputs(enabled=True, mode="Auto", metrics_available=True, decided=True)


def record(**kw: object) -> ActionRecord:
    base: dict[str, object] = {
        "id": "a1",
        "at": 1000.0,
        "from_replicas": 2,
        "to_replicas": 4,
        "reason": "demand",
        "phase": "Applied",
        "target_generation": 7,
        "cooldown_s": 300.0,
    }
    return ActionRecord(**{**base, **kw})  # type: ignore[arg-type]


# --- the gate -------------------------------------------------------------------------------------


def test_gate_open_when_every_part_allows() -> None:
    opened = gate(OPEN)
    assert opened.open and opened.reason == "Applying" and not opened.dry_run


def test_dry_run_is_open_but_dry() -> None:
    opened = gate(GateInputs(**{**OPEN.__dict__, "dry_run": True}))
    assert opened.open and opened.dry_run


@pytest.mark.parametrize(
    ("change", "reason", "said"),
    [
        ({"mode": "Recommend"}, "RecommendOnly", "Recommend"),
        ({"mode": None}, "RecommendOnly", "no OptimizationPolicy"),
        ({"enabled": False}, "AutoApplyNotEnabled", "cluster admin"),
        ({"policy_paused": True}, "Paused", "spec.paused"),
        ({"profile_paused": True}, "Paused", "WorkloadProfile"),
        ({"target_paused": True}, "Paused", "the target"),
        (
            {"autoscalers": (Autoscaler("HorizontalPodAutoscaler", "web"),)},
            "Conflict",
            "HorizontalPodAutoscaler web",
        ),
        ({"metrics_available": False}, "MetricsUnavailable", "metrics"),
        ({"decided": False}, "NoDecision", "decision"),
    ],
)
def test_gate_says_which_part_is_closed(change: dict, reason: str, said: str) -> None:
    opened = gate(GateInputs(**{**OPEN.__dict__, **change}))
    assert not opened.open
    assert opened.reason == reason
    assert said in opened.message


def test_conflict_names_the_autoscaler_kind() -> None:
    hpa = gate(GateInputs(**{**OPEN.__dict__, "autoscalers": (Autoscaler("HorizontalPodAutoscaler", "a"),)}))
    keda = gate(GateInputs(**{**OPEN.__dict__, "autoscalers": (Autoscaler("ScaledObject", "b"),)}))
    assert hpa.conflict is not None and hpa.conflict.reason == "HPAPresent"
    assert keda.conflict is not None and keda.conflict.reason == "ScaledObjectPresent"


def test_paused_wins_over_a_conflict_and_says_every_pause() -> None:
    given_ = GateInputs(
        **{
            **OPEN.__dict__,
            "policy_paused": True,
            "target_paused": True,
            "autoscalers": (Autoscaler("ScaledObject", "x"),),
        }
    )
    opened = gate(given_)
    assert opened.reason == "Paused" and "spec.paused" in opened.message and "the target" in opened.message


# --- settling an intent ---------------------------------------------------------------------------


def test_intent_already_patched_is_applied_not_repeated() -> None:
    assert settle(record(phase="Intended"), replicas=4, generation=8) == "Applied"


def test_intent_never_patched_is_retried() -> None:
    assert settle(record(phase="Intended"), replicas=2, generation=7) == "Retry"


def test_intent_overtaken_by_someone_else_is_superseded() -> None:
    assert settle(record(phase="Intended"), replicas=3, generation=8) == "Superseded"


# --- what the records forbid ------------------------------------------------------------------------

SCALING = Scaling(min_replicas=1, max_replicas=10, max_scale_up_step=3, max_scale_down_step=1, cooldown="5m")


def test_cooldown_from_the_recorded_action() -> None:
    last = record(at=1000.0)
    held = permitted(6, 4, SCALING, last, now=1100.0, watched_since=0.0)
    assert held.replicas == 4 and held.blocked_by == "Cooldown" and "200s left" in held.message
    assert permitted(6, 4, SCALING, last, now=1300.0, watched_since=0.0).replicas == 6


def test_backed_off_cooldown_is_longer_than_the_policy() -> None:
    last = record(at=1000.0, cooldown_s=1200.0)
    assert permitted(6, 4, SCALING, last, now=1500.0, watched_since=0.0).blocked_by == "Cooldown"
    assert permitted(6, 4, SCALING, last, now=2200.0, watched_since=0.0).replicas == 6


def test_superseded_intent_does_not_start_a_cooldown() -> None:
    last = record(at=1000.0, phase="Superseded")
    assert permitted(6, 4, SCALING, last, now=1001.0, watched_since=0.0).replicas == 6


def test_no_scale_in_before_a_whole_stabilisation_window_is_watched() -> None:
    # A restarted operator has lost the window's recommendations: it must not scale in on its first look.
    held = permitted(3, 4, SCALING, None, now=1000.0, watched_since=900.0)
    assert held.replicas == 4 and held.blocked_by == "StabilizationWarmup"
    assert permitted(3, 4, SCALING, None, now=1300.0, watched_since=900.0).replicas == 3
    # Scaling out needs no warm-up: waiting would leave demand unserved.
    assert permitted(6, 4, SCALING, None, now=1000.0, watched_since=999.0).replicas == 6


def test_ineffective_scale_out_stops_scale_out_not_scale_in() -> None:
    last = record(
        at=0.0, stop_scale_out_until=5000.0, verification=Verdict("Ineffective", "limit elsewhere", 900)
    )
    held = permitted(6, 4, SCALING, last, now=1000.0, watched_since=0.0)
    assert held.blocked_by == "ScaleOutIneffective" and "limit elsewhere" in held.message
    assert permitted(3, 4, SCALING, last, now=1000.0, watched_since=0.0).replicas == 3
    assert permitted(6, 4, SCALING, last, now=5001.0, watched_since=0.0).replicas == 6


def test_outside_guardrails_is_refused_as_a_last_check() -> None:
    held = permitted(9, 4, SCALING, None, now=1000.0, watched_since=0.0)
    assert held.replicas == 4 and held.blocked_by == "OutsideGuardrails"


def test_rollback_returns_to_the_previous_count_within_the_step_up_and_bounds() -> None:
    assert rollback_to(SCALING, current=3, previous=4) == 4
    assert rollback_to(SCALING, current=3, previous=9) == 6
    assert rollback_to(Scaling(max_replicas=5, max_scale_up_step=4), current=3, previous=7) == 5


def test_cooldown_after_a_rollback_carries_over() -> None:
    rolled = record(kind="Rollback", cooldown_s=1800.0)
    assert next_cooldown(SCALING, rolled) == 1800.0
    assert next_cooldown(SCALING, record(cooldown_s=1800.0)) == 300.0


# --- zero breaches over generated policies, estimates and restarts -----------------------------------


@st.composite
def scalings(draw: st.DrawFn) -> Scaling:
    low = draw(st.integers(0, 10))
    return Scaling(
        min_replicas=low,
        max_replicas=draw(st.integers(max(low, 1), 30)),
        max_scale_up_step=draw(st.integers(1, 6)),
        max_scale_down_step=draw(st.integers(1, 6)),
        cooldown=f"{draw(st.integers(0, 900))}s",
        scale_down_stabilization=f"{draw(st.integers(0, 15))}m",
    )


# (seconds since the last evaluation, the estimate, whether the operator restarted before it)
evaluations = st.lists(
    st.tuples(st.integers(1, 400), st.integers(0, 60), st.booleans()), min_size=1, max_size=50
)


@settings(max_examples=300, deadline=None)
@given(scaling=scalings(), start=st.integers(0, 30), sequence=evaluations)
def test_zero_guardrail_breaches_across_restarts(scaling: Scaling, start: int, sequence: list) -> None:
    rails = guardrails_of(scaling)
    cooldown = duration_seconds(scaling.cooldown)
    window = duration_seconds(scaling.scale_down_stabilization)
    current = min(max(start, scaling.min_replicas), scaling.max_replicas)
    state, now, watched_since = GuardrailState(), 0.0, 0.0
    last: ActionRecord | None = None
    seen: list[tuple[float, int]] = []
    for gap, estimate, restarted in sequence:
        now += gap
        if restarted:
            # A new process: the guardrails' memory is gone, the status's records are not.
            state, watched_since, seen = GuardrailState(), now, []
        seen.append((now, estimate))
        guarded = rails.apply(estimate, current, state, now)
        state = guarded.state
        allowed = permitted(guarded.replicas, current, scaling, last, now, watched_since)
        replicas = allowed.replicas
        if replicas == current:
            continue
        assert within_guardrails(scaling, current, replicas)
        assert scaling.min_replicas <= replicas <= scaling.max_replicas
        assert last is None or now - last.at >= cooldown, "two actions within the cooldown"
        if replicas < current:
            assert now - watched_since >= window, "scale-in without a whole window of this process's memory"
            highest = max(n for at, n in seen if at > now - window or at == now)
            assert replicas >= min(current, highest), "scale-in below the window's highest recommendation"
        last = ActionRecord("a", now, current, replicas, "", "Applied", 1, cooldown_s=cooldown)
        current = replicas
