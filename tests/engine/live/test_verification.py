"""Verification of a scale action: Holding, Regressed, Ineffective or Inconclusive, from samples up to now."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import greenmatrix.live
from greenmatrix.interval import Interval
from greenmatrix.live.verification import (
    Expected,
    Sample,
    ScaleAction,
    SLOLimits,
    VerificationRule,
    verify,
)

SETTINGS = {"derandomize": True, "deadline": None, "database": None}
RULE = VerificationRule(settle_s=120, window_s=600, min_samples=5, breach_share=0.5)
T0 = 1_000_000.0
STEP = 30.0  # one sample every 30 s
READY = T0 + 60  # the new count is ready a minute after the action
END = READY + RULE.settle_s + RULE.window_s  # the window closes here

SCALE_IN = ScaleAction(
    at=T0,
    from_replicas=4,
    to_replicas=3,
    expected=Expected(utilization=Interval(0.5, 0.6, 0.7), tpot_p95_ms=Interval(20, 25, 30)),
    slo=SLOLimits(tpot_p95_ms=40),
)
SCALE_OUT = ScaleAction(
    at=T0,
    from_replicas=3,
    to_replicas=5,
    expected=Expected(utilization=Interval(0.4, 0.5, 0.6), tpot_p95_ms=Interval(20, 25, 30)),
    slo=SLOLimits(tpot_p95_ms=40),
)


def series(
    action: ScaleAction, tpot: float | list[float], *, util: float = 0.6, until: float = END + 300
) -> list[Sample]:
    """Samples every STEP from a window before the action to `until`: the old count until READY."""
    out = []
    t = T0 - 600
    i = 0
    while t <= until:
        ready = action.from_replicas if t < READY else action.to_replicas
        after = t >= READY
        value = (tpot[i % len(tpot)] if isinstance(tpot, list) else tpot) if after else 24.0
        out.append(Sample(at=t, ready_replicas=ready, utilization=util if after else 0.8, tpot_p95_ms=value))
        i += after
        t += STEP
    return out


def test_inconclusive_until_the_new_replicas_are_ready():
    v = verify(SCALE_IN, series(SCALE_IN, 90.0), READY - 1, cooldown_s=300, rule=RULE)
    assert v.verdict == "Inconclusive" and "waiting for 3 ready replicas" in v.reason


def test_inconclusive_while_settling():
    v = verify(SCALE_IN, series(SCALE_IN, 90.0), READY + RULE.settle_s - 1, cooldown_s=300, rule=RULE)
    assert v.verdict == "Inconclusive" and "settling" in v.reason


def test_inconclusive_with_too_few_samples():
    v = verify(SCALE_IN, series(SCALE_IN, 90.0), READY + RULE.settle_s + 2 * STEP, cooldown_s=300, rule=RULE)
    assert v.verdict == "Inconclusive" and "too few samples" in v.reason


def test_holding_when_the_observations_stay_inside_the_prediction():
    v = verify(SCALE_IN, series(SCALE_IN, [22.0, 26.0, 28.0]), END, cooldown_s=300, rule=RULE)
    assert v.verdict == "Holding" and v.rollback_to is None and v.cooldown_s is None
    assert "utilisation per replica 0.60 (predicted 0.60 [0.50-0.70])" in v.reason


def test_holding_waits_for_the_window_to_close():
    v = verify(SCALE_IN, series(SCALE_IN, 25.0), END - 60, cooldown_s=300, rule=RULE)
    assert v.verdict == "Inconclusive" and "window still open" in v.reason


def test_a_sustained_breach_after_a_scale_in_rolls_back_to_the_previous_count():
    v = verify(SCALE_IN, series(SCALE_IN, [35.0, 36.0, 29.0]), END, cooldown_s=900, rule=RULE)
    assert v.verdict == "Regressed"
    assert v.rollback_to == 4 and v.cooldown_s == 1800  # the cooldown doubles
    assert v.breach_share is not None and v.breach_share >= 0.5
    assert "TPOT p95" in v.reason and "past 30 ms" in v.reason


def test_a_sustained_breach_is_acted_on_before_the_window_closes():
    v = verify(SCALE_IN, series(SCALE_IN, 50.0), READY + RULE.settle_s + 6 * STEP, cooldown_s=300, rule=RULE)
    assert v.verdict == "Regressed" and v.rollback_to == 4


def test_an_early_breach_waits_for_the_least_breach_time():
    early = READY + RULE.settle_s + 5 * STEP  # six samples, all breaching, 150 s into the window
    v = verify(SCALE_IN, series(SCALE_IN, 50.0), early, cooldown_s=300, rule=RULE)
    assert v.verdict == "Inconclusive" and "a breach is called after 180 s" in v.reason


def test_without_an_slo_or_a_prediction_there_is_nothing_to_judge():
    bare = ScaleAction(at=T0, from_replicas=4, to_replicas=3)
    v = verify(bare, series(bare, 50.0), END, cooldown_s=300, rule=RULE)
    assert v.verdict == "Inconclusive" and "no SLO or prediction" in v.reason


def test_the_slo_bounds_a_breach_when_the_prediction_is_looser():
    loose = ScaleAction(
        at=T0,
        from_replicas=4,
        to_replicas=3,
        expected=Expected(tpot_p95_ms=Interval(30, 45, 60)),
        slo=SLOLimits(tpot_p95_ms=40),
    )
    assert verify(loose, series(loose, 50.0), END, cooldown_s=300, rule=RULE).verdict == "Regressed"


def test_one_spike_is_not_a_regression():
    values = [25.0] * 8 + [400.0] + [25.0] * 12
    v = verify(SCALE_IN, series(SCALE_IN, values), END, cooldown_s=300, rule=RULE)
    assert v.verdict == "Holding"


def test_the_cooldown_back_off_is_capped():
    v = verify(SCALE_IN, series(SCALE_IN, 50.0), END, cooldown_s=3000, rule=RULE)
    assert v.cooldown_s == RULE.max_cooldown_s


def test_samples_after_now_are_ignored():
    now = READY + RULE.settle_s + 3 * STEP  # three samples in the window: too few
    calm = [s for s in series(SCALE_IN, 25.0) if s.at <= now]
    future = [Sample(at=now + 1 + i, ready_replicas=3, utilization=1.0, tpot_p95_ms=900.0) for i in range(50)]
    assert verify(SCALE_IN, calm + future, now, cooldown_s=300, rule=RULE) == verify(
        SCALE_IN, calm, now, cooldown_s=300, rule=RULE
    )


@settings(max_examples=100, **SETTINGS)
@given(st.lists(st.floats(1.0, 500.0), min_size=1, max_size=40), st.integers(0, 60))
def test_causal_the_verdict_never_reads_past_now(future_values, offset):
    samples = series(SCALE_IN, [22.0, 26.0, 35.0, 28.0])
    now = READY + offset * STEP
    past = [s for s in samples if s.at <= now]
    future = [
        Sample(at=now + 1 + i, ready_replicas=i % 5, utilization=0.99, tpot_p95_ms=v)
        for i, v in enumerate(future_values)
    ]
    assert verify(SCALE_IN, past + future, now, cooldown_s=300, rule=RULE) == verify(
        SCALE_IN, past, now, cooldown_s=300, rule=RULE
    )


@settings(max_examples=100, **SETTINGS)
@given(st.integers(1, 4).flatmap(lambda k: st.permutations(range(20)).map(lambda p: sorted(p[:k]))))
def test_fewer_than_half_the_samples_past_the_bound_never_roll_back(spiky):
    values = [25.0] * 20
    for i in spiky:
        values[i] = 300.0
    v = verify(SCALE_IN, series(SCALE_IN, values), END, cooldown_s=300, rule=RULE)
    assert v.verdict == "Holding"


def test_a_scale_out_that_restored_the_slo_holds():
    v = verify(SCALE_OUT, series(SCALE_OUT, 25.0, util=0.5), END, cooldown_s=300, rule=RULE)
    assert v.verdict == "Holding" and not v.stop_scale_out


def test_a_scale_out_that_left_the_slo_violated_while_utilisation_fell_did_not_help():
    v = verify(SCALE_OUT, series(SCALE_OUT, 60.0, util=0.5), END, cooldown_s=300, rule=RULE)
    assert v.verdict == "Ineffective" and v.stop_scale_out and v.rollback_to is None
    # Doubled, and at least long enough to judge the next action: settle plus one window.
    assert v.cooldown_s == RULE.settle_s + RULE.window_s
    assert "went 0.80 -> 0.50" in v.reason and "limit is elsewhere" in v.reason


def test_a_scale_out_with_the_slo_violated_and_utilisation_still_high_is_inconclusive():
    v = verify(SCALE_OUT, series(SCALE_OUT, 60.0, util=0.85), END, cooldown_s=300, rule=RULE)
    assert v.verdict == "Inconclusive" and not v.stop_scale_out


def test_a_scale_out_judges_utilisation_against_the_prediction_without_earlier_samples():
    samples = [s for s in series(SCALE_OUT, 60.0, util=0.5) if s.at >= T0]
    v = verify(SCALE_OUT, samples, END, cooldown_s=300, rule=RULE)
    assert v.verdict == "Ineffective" and "predicted 0.50 [0.40-0.60]" in v.reason


def test_no_replica_change_is_inconclusive():
    same = ScaleAction(at=T0, from_replicas=3, to_replicas=3)
    assert verify(same, series(same, 25.0), END, cooldown_s=300, rule=RULE).verdict == "Inconclusive"


@settings(max_examples=150, **SETTINGS)
@given(st.lists(st.sampled_from([22.0, 29.0, 31.0, 45.0]), min_size=30, max_size=30))
def test_a_closed_window_after_a_scale_in_regresses_exactly_when_half_its_samples_breach(values):
    samples = series(SCALE_IN, values)
    v = verify(SCALE_IN, samples, END, cooldown_s=300, rule=RULE)
    start = READY + RULE.settle_s
    window = [s.tpot_p95_ms for s in samples if start <= s.at <= END]
    breached = sum(x is not None and x > 30 for x in window) / len(window)  # the predicted p90 is 30 ms
    assert v.verdict == ("Regressed" if breached >= RULE.breach_share else "Holding")
    assert (v.rollback_to == SCALE_IN.from_replicas) == (v.verdict == "Regressed")


# Modules that read a clock, the environment or the network: none of them in a live decision.
IMPURE = {"time", "datetime", "os", "pathlib", "socket", "random", "kopf", "kubernetes", "aiohttp", "httpx"}


@pytest.mark.parametrize("module", ["verification", "hardware"])
def test_live_decisions_import_no_clock_and_no_io(module):
    path = Path(greenmatrix.live.__file__).parent / f"{module}.py"
    tree = ast.parse(path.read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not imported & IMPURE
