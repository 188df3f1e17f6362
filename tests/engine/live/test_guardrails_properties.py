"""Zero guardrail breaches over generated policies and sequences of estimates: never outside the bounds,
never a step beyond the limits, never two actions within the cooldown, never a scale-in below what
the stabilisation window allows, nothing while paused. The checks keep their own record of the past;
they do not read the guardrails' state."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from greenmatrix.api.meta import duration_seconds
from greenmatrix.api.optimizationpolicy import Scaling
from greenmatrix.live.guardrails import GuardrailState, guardrails_of


@st.composite
def policies(draw: st.DrawFn) -> tuple[Scaling, bool]:
    low = draw(st.integers(0, 20))
    scaling = Scaling(
        min_replicas=low,
        max_replicas=draw(st.integers(max(low, 1), 40)),
        max_scale_up_step=draw(st.integers(1, 8)),
        max_scale_down_step=draw(st.integers(1, 8)),
        cooldown=f"{draw(st.integers(0, 600))}s",
        scale_down_stabilization=f"{draw(st.integers(0, 20))}m",
        target_utilization=draw(st.floats(0.1, 1.0)),
    )
    return scaling, draw(st.booleans())


estimates = st.lists(st.tuples(st.integers(1, 400), st.integers(0, 60)), min_size=1, max_size=60)


@settings(max_examples=300, deadline=None)
@given(policy=policies(), start=st.integers(0, 40), sequence=estimates)
def test_zero_guardrail_breaches(policy: tuple[Scaling, bool], start: int, sequence: list) -> None:
    scaling, paused = policy
    rails = guardrails_of(scaling, paused=paused)
    cooldown = duration_seconds(scaling.cooldown)
    window = duration_seconds(scaling.scale_down_stabilization)
    current = min(max(start, scaling.min_replicas), scaling.max_replicas)
    state, now, last_action, seen = GuardrailState(), 0.0, None, []
    for gap, desired in sequence:
        now += gap
        seen.append((now, desired))
        guarded = rails.apply(desired, current, state, now)
        replicas, state = guarded.replicas, guarded.state
        assert scaling.min_replicas <= replicas <= scaling.max_replicas
        assert current - scaling.max_scale_down_step <= replicas <= current + scaling.max_scale_up_step
        if replicas != current:
            assert not paused
            assert last_action is None or now - last_action >= cooldown
            last_action = now
        if replicas < current:
            allowed = max(n for at, n in seen if at > now - window or at == now)
            assert replicas >= min(current, allowed)
        current = replicas
