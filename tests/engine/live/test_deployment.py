"""One evaluation of a running deployment: capacity learnt from its latencies, the demand assessed
from the new rows only, and the hardware reviewed on a plan at the observed load."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

from greenmatrix.api import OptimizationPolicySpec, WorkloadProfileSpec
from greenmatrix.live.deployment import (
    DeploymentState,
    Observed,
    at_observed_batch,
    at_observed_load,
    evaluate_deployment,
    two_figures,
)
from greenmatrix.live.hardware import Layout
from greenmatrix.planning.planner import plan as make_plan
from greenmatrix.predict.predictors import Predictors

ROOT = Path(__file__).resolve().parents[3]
STEP = 300.0
STARTUP = 180.0


@pytest.fixture(scope="module")
def spec() -> WorkloadProfileSpec:
    doc = yaml.safe_load((ROOT / "examples" / "llama-8b-chat.yaml").read_text())
    return WorkloadProfileSpec.model_validate(doc["spec"])


@pytest.fixture(scope="module")
def predictors() -> Predictors:
    return Predictors.load()


def planned(spec: WorkloadProfileSpec, predictors: Predictors):
    return make_plan(spec, None, region="us-east-1", gpus=["H100-SXM-80GB", "L4"], predictors=predictors)


def day(values_per_step) -> tuple[np.ndarray, np.ndarray]:
    times = 1_700_000_000.0 + STEP * np.arange(len(values_per_step))
    return times, np.asarray(values_per_step, float)


def observed(rate: float, *, tpot_s: float | None = None, running: float | None = None) -> Observed:
    return Observed(
        as_of=0.0,
        request_rate=rate,
        prompt_tokens_rate=rate * 900,
        generation_tokens_rate=rate * 210,
        tpot_mean_s=tpot_s,
        ttft_mean_s=None,
        running_requests=running,
        ready_replicas=2,
    )


def test_the_load_seen_rounds_to_two_figures_so_plans_repeat(spec):
    assert two_figures(41.7) == 42.0 and two_figures(0.0123) == 0.012
    loaded = at_observed_load(spec, observed(3.14))
    assert loaded.inference.requests_per_second == 3.1
    assert (loaded.inference.input_tokens, loaded.inference.output_tokens) == (900, 210)
    assert loaded.inference.concurrency == spec.inference.concurrency
    batch = at_observed_batch(spec, observed(3.14, running=13.0), replicas=2)
    assert batch is not None and batch.inference.concurrency == 6  # 6.5 per replica, to a whole batch
    assert at_observed_batch(spec, observed(3.14), replicas=2) is None


def test_an_evaluation_feeds_only_new_rows_and_decides_once_warm(spec, predictors):
    plan = planned(at_observed_load(spec, observed(4.0)), predictors)
    layout = Layout("H100-SXM-80GB", 1, 2)
    rng = np.random.default_rng(3)
    times, values = day(4 + np.sin(np.arange(2 * 288) * 2 * np.pi / 288) + rng.normal(0, 0.1, 2 * 288))
    state = DeploymentState.start(STEP, STARTUP)
    first = evaluate_deployment(
        spec, plan, layout, observed(4.0), times[:20], values[:20], times[19], None, state
    )
    assert first.decision is None and "warming up" in first.forecast_reason
    assert first.state.history_points == 20 and first.state.fed_until == times[19]
    # The same rows again plus the rest: only the new ones are fed.
    second = evaluate_deployment(
        spec, plan, layout, observed(4.0), times, values, times[-1], None, first.state
    )
    assert second.state.history_points == len(times)
    assert second.decision is not None and second.demand is not None
    assert second.demand.p10 <= second.demand.p50 <= second.demand.p90
    assert second.capacity is not None and "performance model alone" in second.capacity.basis
    need = second.demand.p90 / (second.capacity.requests_per_second.p10 * 0.7)
    assert second.estimated == max(1, int(np.ceil(need - 1e-9)))
    assert second.hardware.action in ("Maintain", "Upgrade", "Downgrade")


def test_guardrails_limit_the_estimate_and_say_which(spec, predictors):
    plan = planned(at_observed_load(spec, observed(4.0)), predictors)
    policy = OptimizationPolicySpec.model_validate({"scaling": {"minReplicas": 1, "maxReplicas": 2}})
    times, values = day(np.full(400, 400.0))  # far beyond two replicas
    state = DeploymentState.start(STEP, STARTUP)
    result = evaluate_deployment(
        spec, plan, Layout("H100-SXM-80GB", 1, 2), observed(400.0), times, values, times[-1], policy, state
    )
    assert result.estimated is not None and result.estimated > 2
    assert result.decision is not None and result.decision.desired == 2
    assert "Bounds" in result.limited_by


def test_slower_latency_than_predicted_lowers_the_learnt_capacity(spec, predictors):
    layout = Layout("H100-SXM-80GB", 1, 2)
    seen = observed(4.0, running=16.0)
    plan = planned(at_observed_load(spec, seen), predictors)
    seen_plan = planned(at_observed_batch(spec, seen, 2), predictors)
    option = next(o for o in seen_plan.options if o.gpu == "H100-SXM-80GB" and o.gpus_per_replica == 1)
    times, values = day(np.full(40, 4.0))
    state = DeploymentState.start(STEP, STARTUP)
    prior = evaluate_deployment(
        spec, plan, layout, replace(seen, tpot_mean_s=None), times, values, times[-1], None, state
    )
    slow = replace(seen, tpot_mean_s=2.0 * option.tpot_ms.p50 / 1e3)
    capacities = []
    for _ in range(6):
        state = evaluate_deployment(
            spec, plan, layout, slow, times, values, times[-1], None, state, seen_plan
        ).state
        capacities.append(
            evaluate_deployment(
                spec, plan, layout, slow, times, values, times[-1], None, state, seen_plan
            ).capacity
        )
    assert prior.capacity is not None and capacities[-1] is not None
    learnt, model = capacities[-1].requests_per_second, prior.capacity.requests_per_second
    assert learnt.p50 < 0.8 * model.p50
    assert "TPOT corrected by" in capacities[-1].basis
    # More evidence, narrower interval.
    width = [c.requests_per_second.p90 / c.requests_per_second.p10 for c in capacities]
    assert width[-1] < width[0] < model.p90 / model.p10


def test_a_layout_outside_the_plan_gives_no_scaling_but_a_reason(spec, predictors):
    plan = planned(at_observed_load(spec, observed(4.0)), predictors)
    times, values = day(np.full(60, 4.0))
    result = evaluate_deployment(
        spec,
        plan,
        Layout("T4", 3, 2),
        observed(4.0),
        times,
        values,
        times[-1],
        None,
        DeploymentState.start(STEP, STARTUP),
    )
    assert result.decision is None and "capacity unknown" in result.reason
    assert result.hardware.action == "Maintain"
