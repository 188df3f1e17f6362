"""A live evaluation as status: `observed`, `forecast`, `scaling`, `hardware`, `anomalies`, and the
MetricsAvailable and ScalingLimited conditions. Layout only: what was decided comes from the engine."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from greenmatrix import DeploymentEvaluation, Interval, Observed
from greenmatrix_operator.status.conditions import METRICS_AVAILABLE, SCALING_LIMITED, ConditionState

METRICS_READ = "MetricsRead"
PARTIAL_METRICS = "PartialMetrics"
NOT_CONFIGURED = "PrometheusNotConfigured"
WITHIN_GUARDRAILS = "WithinGuardrails"
NO_DECISION = "NoDecision"


def rfc3339(epoch: float) -> str:
    """Epoch seconds as metav1.Time writes them (seconds, UTC, 'Z')."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def duration_text(seconds: float) -> str:
    """Seconds as a Kubernetes-style duration: 8m, 1h30m, 45s."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{secs}s" if secs else ""]
    return "".join(parts) or "0s"


def _num(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else float(f"{x:.{digits}g}")


def _interval(i: Interval | None, digits: int = 4) -> dict[str, float] | None:
    if i is None:
        return None
    return {"p10": _num(i.p10, digits), "p50": _num(i.p50, digits), "p90": _num(i.p90, digits)}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else _num(seconds * 1e3)


def observed_fields(o: Observed) -> dict[str, Any]:
    """The `observed` status field: the figures that had data."""
    fields = {
        "asOf": rfc3339(o.as_of),
        "requestsPerSecond": _num(o.request_rate),
        "inputTokens": _num(o.input_tokens, 3),
        "outputTokens": _num(o.output_tokens, 3),
        "ttftP95Ms": _ms(o.ttft_p95_s),
        "tpotP95Ms": _ms(o.tpot_p95_s),
        "runningRequests": _num(o.running_requests),
        "waitingRequests": _num(o.waiting_requests),
        "kvCacheUsage": _num(o.kv_cache_usage, 3),
        "gpuUtilizationPercent": _num(o.gpu_utilization, 3),
        "powerWatts": _num(o.power_watts),
        "readyReplicas": o.ready_replicas,
    }
    return {k: v for k, v in fields.items() if v is not None}


def live_fields(e: DeploymentEvaluation) -> dict[str, Any]:
    """The status fields of one live evaluation (absent parts are removed by the next write)."""
    fields: dict[str, Any] = {"observed": observed_fields(e.observed)}
    forecast: dict[str, Any] = {
        "horizon": duration_text(e.horizon),
        "historyPoints": e.state.history_points,
        "reason": e.forecast_reason or "forecast from the demand history, anomalies kept out",
    }
    if e.demand is not None:
        forecast["requestsPerSecond"] = _interval(e.demand)
    fields["forecast"] = forecast
    if e.decision is not None:
        d = e.decision
        scaling: dict[str, Any] = {
            "currentReplicas": d.current,
            "desiredReplicas": d.desired,
            "action": str(d.action),
            "reason": d.reason,
            "estimatedReplicas": e.estimated,
            "predictedUtilization": _interval(d.utilization, 3),
        }
        if e.limited_by:
            scaling["limitedBy"] = list(e.limited_by)
        if e.capacity is not None:
            scaling["capacityPerReplica"] = _interval(e.capacity.requests_per_second)
            scaling["basis"] = e.capacity.basis
        fields["scaling"] = {k: v for k, v in scaling.items() if v is not None}
    fields["hardware"] = hardware_fields(e)
    if e.anomalies:
        fields["anomalies"] = [
            {"at": rfc3339(t), "requestsPerSecond": None if v != v else _num(v), "score": round(s, 3)}
            for t, v, s in e.anomalies
        ]
    return fields


def hardware_fields(e: DeploymentEvaluation) -> dict[str, Any]:
    h, p = e.hardware, e.precision
    fields: dict[str, Any] = {
        "action": h.action,
        "gpu": h.gpu,
        "gpusPerReplica": h.gpus_per_replica,
        "reason": h.reason,
        "precision": p.action,
    }
    if h.effect is not None:
        fields["replicas"] = _interval(h.effect.replicas, 3)
        fields["usdPerHour"] = _interval(h.effect.usd_per_hour)
        fields["watts"] = _interval(h.effect.watts)
        fields["tpotMs"] = _interval(h.effect.tpot_ms)
    if p.action == "Quantize" or p.reason:
        fields["precisionDetail"] = p.reason
    return {k: v for k, v in fields.items() if v is not None}


def live_conditions(e: DeploymentEvaluation, rejected: Mapping[str, str]) -> tuple[ConditionState, ...]:
    """MetricsAvailable (True; PartialMetrics naming each rejected override) and ScalingLimited."""
    if rejected:
        said = "; ".join(f"{field}: Prometheus rejected it: {error}" for field, error in rejected.items())
        reason, message = PARTIAL_METRICS, f"{said}; the other figures read"
    else:
        reason, message = METRICS_READ, f"as of {rfc3339(e.observed.as_of)}"
    if e.decision is None:
        limited = ("Unknown", NO_DECISION, e.reason or "no replica decision yet")
    elif e.limited_by:
        # The last guardrail to move the estimate is the one that binds.
        limited = ("True", e.limited_by[-1], e.decision.reason)
    else:
        limited = ("False", WITHIN_GUARDRAILS, "the guardrails kept the estimate")
    status, why, said_limited = limited
    return (
        ConditionState(METRICS_AVAILABLE, "True", reason, message),
        ConditionState(SCALING_LIMITED, status, why, said_limited),  # type: ignore[arg-type]
    )


def metrics_unavailable(reason: str, message: str) -> tuple[ConditionState, ...]:
    """MetricsAvailable=False with the reason; no replica decision while blind."""
    return (
        ConditionState(METRICS_AVAILABLE, "False", reason, message),
        ConditionState(SCALING_LIMITED, "Unknown", NO_DECISION, "no replica decision without metrics"),
    )
