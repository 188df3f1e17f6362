"""A live evaluation as status: the fields validate against the CRD's status model, conditions say
what held the estimate back, and failures keep the figures but drop the decision."""

from __future__ import annotations

import numpy as np
import pytest
from greenmatrix_operator.status import live
from greenmatrix_operator.status.conditions import METRICS_AVAILABLE, SCALING_LIMITED

from greenmatrix import (
    DeploymentState,
    Layout,
    Observed,
    OptimizationPolicySpec,
    Predictors,
    WorkloadProfileSpec,
    at_observed_load,
    evaluate_deployment,
    plan,
)
from greenmatrix.api.workloadprofile import WorkloadProfileStatus

SPEC = WorkloadProfileSpec.model_validate(
    {
        "task": "inference",
        "model": {"name": "meta-llama/Llama-3.1-8B-Instruct", "framework": "vllm"},
        "inference": {"concurrency": 32, "slo": {"tpotMs": 60}},
        "targetRef": {"kind": "Deployment", "name": "chat"},
    }
)
STEP = 60.0


@pytest.fixture(scope="module")
def predictors() -> Predictors:
    return Predictors.load()


def evaluation(predictors: Predictors, demand: float, policy: OptimizationPolicySpec | None = None):
    seen = Observed(
        as_of=1_700_100_000.0,
        request_rate=demand,
        prompt_tokens_rate=demand * 1000,
        generation_tokens_rate=demand * 250,
        ttft_p95_s=0.2,
        tpot_p95_s=0.03,
        running_requests=20.0,
        gpu_utilization=63.0,
        power_watts=900.0,
        ready_replicas=2,
    )
    planned = plan(at_observed_load(SPEC, seen), None, gpus=["H100-SXM-80GB", "L4"], predictors=predictors)
    times = 1_700_000_000.0 + STEP * np.arange(1500)
    values = demand * (1 + 0.05 * np.sin(np.arange(1500) / 30.0))
    values[-3] = demand * 40  # one spike, reported and kept out
    layout = Layout("NVIDIA-H100-80GB-HBM3", 1, 2)
    state = DeploymentState.start(STEP, 180.0)
    return evaluate_deployment(SPEC, planned, layout, seen, times, values, times[-1], policy, state)


def test_the_live_fields_validate_against_the_status_schema(predictors):
    result = evaluation(predictors, 6.0)
    fields = live.live_fields(result)
    status = WorkloadProfileStatus.model_validate(fields)  # what the API server's schema admits
    assert status.observed is not None and status.observed.requests_per_second == 6.0
    assert status.observed.input_tokens == 1000 and status.observed.gpu_utilization_percent == 63.0
    assert status.observed.as_of == "2023-11-16T02:00:00Z"  # 1,700,100,000 s
    assert status.forecast is not None and status.forecast.requests_per_second is not None
    assert status.forecast.horizon == "4m"  # start-up 3m plus one 1m step
    assert status.scaling is not None and status.scaling.current_replicas == 2
    assert status.scaling.capacity_per_replica is not None
    assert status.hardware is not None and status.hardware.action in ("Maintain", "Upgrade", "Downgrade")
    assert status.anomalies and status.anomalies[-1].requests_per_second == pytest.approx(240.0)


def test_guardrails_that_held_the_estimate_back_name_the_condition(predictors):
    tight = OptimizationPolicySpec.model_validate({"scaling": {"minReplicas": 1, "maxReplicas": 2}})
    result = evaluation(predictors, 60.0, tight)
    assert result.estimated is not None and result.estimated > 2
    metrics, limited = live.live_conditions(result, {})
    assert (metrics.type, metrics.status, metrics.reason) == (METRICS_AVAILABLE, "True", "MetricsRead")
    assert (limited.type, limited.status, limited.reason) == (SCALING_LIMITED, "True", "Bounds")
    assert live.live_fields(result)["scaling"]["limitedBy"][-1] == "Bounds"


def test_a_rejected_override_is_named_and_the_rest_still_counts(predictors):
    result = evaluation(predictors, 6.0)
    metrics, _ = live.live_conditions(result, {"spec.metrics.ttftP95Seconds": "parse error at char 5"})
    assert metrics.status == "True" and metrics.reason == "PartialMetrics"
    assert "spec.metrics.ttftP95Seconds" in metrics.message and "parse error at char 5" in metrics.message


def test_blind_means_no_decision():
    metrics, limited = live.metrics_unavailable("PrometheusUnavailable", "connection refused")
    assert (metrics.status, metrics.reason) == ("False", "PrometheusUnavailable")
    assert limited.status == "Unknown"


def test_durations_read_as_kubernetes_writes_them():
    assert [live.duration_text(s) for s in (0, 45, 480, 5400, 3661)] == ["0s", "45s", "8m", "1h30m", "1h1m1s"]
