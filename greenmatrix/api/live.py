"""What a running workload's status says once the operator reads its live metrics.

Each part answers one question a user asks of a running deployment: what is it serving now
(`observed`), what load comes next (`forecast`), how many replicas it needs (`scaling`), whether
another GPU type or precision would serve it better (`hardware`), and which readings were judged
anomalous and kept out of the decisions (`anomalies`). Predictions carry their 80% interval.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from greenmatrix.api.meta import Interval, Schema


class ObservedFigures(Schema):
    """What the deployment's metrics show at `asOf` (absent: the metric had no data)."""

    as_of: str
    """Time of the newest sample the figures rest on (RFC 3339)."""
    requests_per_second: float | None = None
    """Requests arriving per second across all pods: those completed plus the queue's growth (the
    demand, even when the replicas cannot keep up)."""
    input_tokens: float | None = None
    """Mean prompt length of the requests served, in tokens."""
    output_tokens: float | None = None
    """Mean generated length of the requests served, in tokens."""
    ttft_p95_ms: float | None = None
    """95th percentile time to first token, in milliseconds."""
    tpot_p95_ms: float | None = None
    """95th percentile time per output token, in milliseconds."""
    running_requests: float | None = None
    """Requests being served across all pods (the engines' batch)."""
    waiting_requests: float | None = None
    """Requests queued across all pods."""
    kv_cache_usage: float | None = None
    """Mean share of the KV cache in use, 0 to 1."""
    gpu_utilization_percent: float | None = None
    """Mean utilisation of the deployment's GPUs, in percent."""
    power_watts: float | None = None
    """Power drawn by the deployment's GPUs, in watts."""
    ready_replicas: int | None = None
    """Ready replicas of the target."""


class DemandForecast(Schema):
    """The request rate expected over the lead time (a replica's start-up plus one evaluation)."""

    horizon: str
    """How far ahead the forecast reaches, e.g. 8m."""
    requests_per_second: Interval | None = None
    """Busiest forecast demand over the horizon, requests per second (absent while warming up)."""
    history_points: int = 0
    """Samples of demand the forecaster has learnt from."""
    reason: str = ""
    """Why there is no forecast yet, or what it rests on."""


class ReplicaScaling(Schema):
    """The replica decision for the forecast demand, after the policy's guardrails."""

    current_replicas: int
    """Replicas the target asks for now (its scale subresource's spec)."""
    desired_replicas: int
    """Replicas GreenMatrix would run: the estimate, capped by the guardrails."""
    action: Literal["ScaleOut", "ScaleIn", "Maintain"]
    """What the desired count means for the current one."""
    reason: str
    """Why, in words: the demand, a replica's capacity and the guardrails that limited it."""
    limited_by: list[str] | None = Field(default=None, max_length=8)
    """Guardrails that changed the estimate, e.g. maxReplicas, maxScaleUpStep, cooldown."""
    estimated_replicas: int | None = None
    """Replicas the demand needs before the guardrails."""
    predicted_utilization: Interval | None = None
    """Share of the desired replicas' capacity the forecast demand will use."""
    capacity_per_replica: Interval | None = None
    """Requests per second one replica serves within its objectives, as learnt so far."""
    basis: str | None = None
    """How much the deployment's own latency corrected the predicted capacity."""


class HardwareReview(Schema):
    """Whether the deployment's GPU type and precision still fit the load it serves (never applied)."""

    action: Literal["Upgrade", "Downgrade", "Maintain"]
    """Upgrade when the current GPU type misses the objectives; Downgrade when another meets them cheaper
    or greener by a margin; else Maintain."""
    gpu: str
    """GPU type recommended (the current one on Maintain)."""
    gpus_per_replica: int
    """GPUs per replica on that type."""
    reason: str
    """Why, with the predicted effect."""
    replicas: Interval | None = None
    """Replicas the target type needs at the observed load."""
    usd_per_hour: Interval | None = None
    """Predicted cost of those replicas per hour."""
    watts: Interval | None = None
    """Predicted power of those replicas."""
    tpot_ms: Interval | None = None
    """Predicted time per output token on the target type."""
    precision: Literal["Quantize", "Maintain"] = "Maintain"
    """Whether serving at a narrower precision is predicted to pay."""
    precision_detail: str | None = None
    """The precision change and what it buys."""


class AnomalyReport(Schema):
    """A demand reading judged anomalous: reported, and kept out of the forecast and the decisions."""

    at: str
    """Time of the reading (RFC 3339)."""
    requests_per_second: Annotated[float | None, Field()] = None
    """The reading (absent for a gap)."""
    score: Annotated[float, Field(ge=0, le=1)]
    """How anomalous, 0 to 1."""


class ActionVerification(Schema):
    """Whether an applied action did what it predicted, judged once its replicas were ready and a
    window had passed."""

    result: Literal["Holding", "Regressed", "Ineffective", "Inconclusive"]
    """Holding: as predicted. Regressed: a scale-in pushed an SLO figure past its bound (rolled back).
    Ineffective: a scale-out left the SLO violated while each replica's load fell (no further
    scale-out). Inconclusive: too little evidence."""
    reason: str
    """The figures behind the verdict, in words."""
    time: str
    """When it was judged (RFC 3339)."""


class ScaleActionRecord(Schema):
    """One replica change GreenMatrix made (or, in a dry run, would have made) on the target."""

    id: str
    """Unique per WorkloadProfile: the Events about the action name it."""
    time: str
    """When the action was decided (RFC 3339); the intent is recorded then, before the patch."""
    kind: Literal["Scale", "Rollback"]
    """Scale: a replica decision applied. Rollback: back to the count before a scale-in that regressed."""
    from_replicas: int
    """The target's replicas before the action."""
    to_replicas: int
    """The replicas the action set."""
    reason: str
    """Why, in words: the demand, a replica's capacity and the guardrails."""
    phase: Literal["Intended", "Applied", "DryRun", "Superseded", "Failed"]
    """Intended: recorded, not yet confirmed patched. Applied: the target's scale subresource has it.
    DryRun: recorded only. Superseded: the target's spec changed before the patch, which was dropped.
    Failed: the API server refused the patch."""
    target_generation: int
    """The target's metadata.generation when the intent was recorded."""
    predicted_utilization: Interval | None = None
    """Share of the new replicas' capacity the forecast demand was predicted to use."""
    cooldown_seconds: float | None = None
    """The cooldown after this action (backed off after a failed verification)."""
    verification: ActionVerification | None = None
    """The verdict once judged (absent while the action is too recent to judge)."""
    stop_scale_out_until: str | None = None
    """After an Ineffective scale-out: no scale-out before this time (RFC 3339)."""
