"""One evaluation of a running deployment, the operator's live loop in one call.

What the deployment is seen serving (`Observed`) corrects what a replica is predicted to serve: each
evaluation adds its measured mean TTFT and TPOT, beside what the plan predicted at the same load, to
the evidence a `Calibration` learns from, so the capacity's interval narrows as the evidence grows.
The demand rows new since the last evaluation go through `assess` (anomalies, forecast, replicas,
guardrails), and the plan made at the observed load is read for a better GPU type or precision. The
caller keeps the returned `DeploymentState` and passes it back; nothing here reads a clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from greenmatrix.api.optimizationpolicy import OptimizationPolicySpec
from greenmatrix.api.workloadprofile import OptionPrediction, WorkloadProfileSpec
from greenmatrix.catalog import hardware as catalog
from greenmatrix.interval import Interval
from greenmatrix.live.assess import WorkloadState, assess
from greenmatrix.live.calibration import Calibration
from greenmatrix.live.decide import ReplicaDecision
from greenmatrix.live.guardrails import guardrails_of
from greenmatrix.live.hardware import (
    HardwareDecision,
    Layout,
    Load,
    PrecisionDecision,
    decode_bound,
    hardware_decision,
    precision_decision,
)
from greenmatrix.planning.capacity import replica_capacity, request_latency
from greenmatrix.planning.result import Plan
from greenmatrix.policy import scaling_of

# A day of five-minute evaluations: enough for the correction to settle, bounded per workload.
EVIDENCE_KEPT = 288
ANOMALIES_KEPT = 10
# Waiting requests per replica above which TTFT is taken to include queueing.
QUEUE_PER_REPLICA = 0.5


@dataclass(frozen=True)
class Observed:
    """The deployment's figures at `as_of` (epoch seconds); None where a metric had no data."""

    as_of: float
    request_rate: float | None = None
    prompt_tokens_rate: float | None = None
    generation_tokens_rate: float | None = None
    ttft_p95_s: float | None = None
    tpot_p95_s: float | None = None
    ttft_mean_s: float | None = None
    tpot_mean_s: float | None = None
    running_requests: float | None = None
    waiting_requests: float | None = None
    kv_cache_usage: float | None = None
    gpu_utilization: float | None = None
    power_watts: float | None = None
    ready_replicas: int | None = None

    def per_request(self, tokens_rate: float | None) -> float | None:
        """Tokens per request from a token rate and the request rate (None without both)."""
        if tokens_rate is None or not self.request_rate or self.request_rate <= 0:
            return None
        return tokens_rate / self.request_rate

    @property
    def input_tokens(self) -> float | None:
        return self.per_request(self.prompt_tokens_rate)

    @property
    def output_tokens(self) -> float | None:
        return self.per_request(self.generation_tokens_rate)

    def concurrency_per_replica(self, replicas: int) -> float | None:
        """Requests in flight per replica (None without the running gauge or replicas)."""
        if self.running_requests is None or replicas < 1:
            return None
        return self.running_requests / replicas


def two_figures(x: float) -> float:
    """`x` to two significant figures: a plan made for 41.7 requests/s serves 42.3 too, and repeats."""
    if x <= 0 or not math.isfinite(x):
        return x
    digits = 1 - math.floor(math.log10(x))
    return round(x, digits)


def at_observed_load(spec: WorkloadProfileSpec, observed: Observed) -> WorkloadProfileSpec:
    """The spec with the request rate and lengths the deployment is seen serving (two significant
    figures, so successive evaluations usually share a plan); the batch stays as configured."""
    inference = spec.inference
    if inference is None:
        return spec
    update: dict[str, float | int] = {}
    if observed.request_rate is not None and observed.request_rate > 0:
        update["requests_per_second"] = two_figures(observed.request_rate)
    for name, seen in (("input_tokens", observed.input_tokens), ("output_tokens", observed.output_tokens)):
        if seen is not None and seen >= 1:
            update[name] = max(1, int(two_figures(seen)))
    if inference.output_tokens >= 2 and update.get("output_tokens", 2) < 2:
        update.pop("output_tokens")  # a TPOT objective needs two tokens: keep the configured length
    if not update:
        return spec
    return spec.model_copy(update={"inference": inference.model_copy(update=update)})


@dataclass(frozen=True)
class Evidence:
    """One evaluation's measured mean latencies beside the plan's prediction for them at the batch the
    replicas were seen running (ms)."""

    ttft: tuple[Interval, float] | None
    tpot: tuple[Interval, float] | None
    load: float


@dataclass(frozen=True)
class DeploymentState:
    """What one deployment's evaluations carry: the assessment's state, the latency evidence, the
    standing hardware recommendation, recent anomalies, and the last demand row fed."""

    step: float
    startup: float
    workload: WorkloadState
    evidence: tuple[Evidence, ...] = ()
    hardware: HardwareDecision | None = None
    anomalies: tuple[tuple[float, float, float], ...] = ()
    fed_until: float | None = None
    history_points: int = 0

    @classmethod
    def start(cls, step: float, startup: float) -> DeploymentState:
        return cls(step, startup, WorkloadState.start(step, startup))

    def acted_at(self, at: float | None) -> DeploymentState:
        """This state with the replicas last changed at `at`: under auto-apply the guardrails' cooldown
        runs from the action really applied, not from the last estimate that differed (which assumes
        every estimate is acted on at once)."""
        guardrails = replace(self.workload.guardrails, last_action_at=at)
        return replace(self, workload=replace(self.workload, guardrails=guardrails))


@dataclass(frozen=True)
class Capacity:
    """Requests per second one replica serves at its configured batch, and what corrected it."""

    requests_per_second: Interval
    basis: str


@dataclass(frozen=True)
class DeploymentEvaluation:
    observed: Observed
    capacity: Capacity | None
    demand: Interval | None
    horizon: float
    forecast_reason: str
    decision: ReplicaDecision | None
    estimated: int | None
    limited_by: tuple[str, ...]
    hardware: HardwareDecision
    precision: PrecisionDecision
    state: DeploymentState
    reason: str = ""
    anomalies: tuple[tuple[float, float, float], ...] = field(default=())
    """(time, value, score) of the recent demand readings judged anomalous, oldest first."""


def _option_for(plan: Plan, layout: Layout) -> OptionPrediction | None:
    wanted = catalog.try_gpu(layout.gpu)
    for option in plan.options:
        if option.gpus_per_replica != layout.gpus_per_replica:
            continue
        if option.gpu == layout.gpu or (wanted is not None and catalog.try_gpu(option.gpu) == wanted):
            return option
    return None


def _wire(i: object | None) -> Interval | None:
    if i is None:
        return None
    return Interval(i.p10, i.p50, i.p90)  # type: ignore[attr-defined]


def observed_batch(observed: Observed, replicas: int) -> int | None:
    """Requests in flight per replica as a whole batch (at least 1), None without the running gauge."""
    seen = observed.concurrency_per_replica(replicas)
    return None if seen is None else max(1, round(two_figures(seen)) if seen >= 1 else 1)


def at_observed_batch(
    spec: WorkloadProfileSpec, observed: Observed, replicas: int
) -> WorkloadProfileSpec | None:
    """The spec at the observed load and the batch each replica is seen running: what the measured
    latencies are compared with (None without the running gauge)."""
    batch = observed_batch(observed, replicas)
    loaded = at_observed_load(spec, observed)
    if batch is None or loaded.inference is None:
        return None
    return loaded.model_copy(update={"inference": loaded.inference.model_copy(update={"concurrency": batch})})


def _evidence(option: OptionPrediction, observed: Observed, batch: int, replicas: int) -> Evidence | None:
    # With requests queueing, TTFT measures the queue as much as the replica: only TPOT is evidence.
    queued = (observed.waiting_requests or 0.0) > QUEUE_PER_REPLICA * max(replicas, 1)
    ttft = None if queued else observed.ttft_mean_s
    pairs = []
    for predicted, seen in ((option.ttft_ms, ttft), (option.tpot_ms, observed.tpot_mean_s)):
        interval = _wire(predicted)
        ok = interval is not None and seen is not None and seen > 0 and interval.p10 > 0
        pairs.append((interval, seen * 1e3) if ok else None)  # type: ignore[operator]
    if pairs == [None, None]:
        return None
    return Evidence(pairs[0], pairs[1], float(batch))


def _corrected(
    predicted: Interval, rows: list[tuple[Interval, float, float]], key: tuple[str, int], batch: int
) -> tuple[Interval, str]:
    """`predicted` (at `batch` requests in flight) corrected by the rows (prediction, measured, batch)."""
    if not rows:
        return predicted, ""
    calibration = Calibration.fit(
        [key] * len(rows),
        [key[0]] * len(rows),
        [r[0].p10 for r in rows],
        [r[0].p50 for r in rows],
        [r[0].p90 for r in rows],
        [r[1] for r in rows],
        load=[r[2] for r in rows],
    )
    out = calibration.apply([key], [key[0]], [predicted.p10], [predicted.p50], [predicted.p90], load=[batch])
    return Interval(float(out.p10[0]), float(out.p50[0]), float(out.p90[0])), out.basis[0]


def learned_capacity(
    option: OptionPrediction, evidence: tuple[Evidence, ...], concurrency: int, output_tokens: int
) -> Capacity | None:
    """A replica's capacity from the option's predicted latencies, corrected by the evidence."""
    ttft, tpot = _wire(option.ttft_ms), _wire(option.tpot_ms)
    if ttft is None:
        return None
    key = (option.gpu, option.gpus_per_replica)
    ttft, ttft_basis = _corrected(ttft, [(*e.ttft, e.load) for e in evidence if e.ttft], key, concurrency)
    bases = [f"TTFT {ttft_basis}"] if ttft_basis else []
    if tpot is None:
        tpot = Interval(0.0, 0.0, 0.0)
    else:
        tpot, tpot_basis = _corrected(tpot, [(*e.tpot, e.load) for e in evidence if e.tpot], key, concurrency)
        bases += [f"TPOT {tpot_basis}"] if tpot_basis else []
    capacity = replica_capacity(concurrency, request_latency(ttft, tpot, output_tokens))
    basis = "; ".join(bases) or "the performance model alone: no latency observed yet"
    return Capacity(capacity, basis)


def _new_rows(
    state: DeploymentState, timestamps: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    times, vals = np.asarray(timestamps, float), np.asarray(values, float)
    if state.fed_until is not None:
        keep = times > state.fed_until
        times, vals = times[keep], vals[keep]
    return times, vals


def _slo_missed(spec: WorkloadProfileSpec, observed: Observed) -> bool:
    slo = spec.inference.slo if spec.inference else None
    if slo is None:
        return False
    checks = ((slo.ttft_ms, observed.ttft_p95_s), (slo.tpot_ms, observed.tpot_p95_s))
    return any(limit is not None and seen is not None and seen * 1e3 > limit for limit, seen in checks)


def evaluate_deployment(
    spec: WorkloadProfileSpec,
    plan: Plan,
    layout: Layout,
    observed: Observed,
    demand_timestamps: np.ndarray,
    demand_values: np.ndarray,
    now: float,
    policy: OptimizationPolicySpec | None,
    state: DeploymentState,
    seen_plan: Plan | None = None,
) -> DeploymentEvaluation:
    """Learn the capacity, assess the new demand rows, review the hardware: one evaluation.

    `plan` is the workload planned at the observed load (`at_observed_load`); `layout` where the
    deployment runs now; `seen_plan` the workload planned at the batch the replicas are seen running
    (`at_observed_batch`), what the measured latencies are compared with; the demand rows are request
    rates at the state's step, any already fed are skipped."""
    inference = spec.inference
    concurrency = inference.concurrency if inference else 1
    output_tokens = inference.output_tokens if inference else 1
    option = _option_for(plan, layout)
    evidence = state.evidence
    seen_option = _option_for(seen_plan, layout) if seen_plan is not None else None
    batch = observed_batch(observed, observed.ready_replicas or layout.replicas)
    if seen_option is not None and batch is not None:
        seen = _evidence(seen_option, observed, batch, observed.ready_replicas or layout.replicas)
        if seen is not None:
            evidence = (*evidence, seen)[-EVIDENCE_KEPT:]
    capacity = learned_capacity(option, evidence, concurrency, output_tokens) if option else None
    times, values = _new_rows(state, demand_timestamps, demand_values)
    scaling = scaling_of(policy)
    guardrails = guardrails_of(scaling, paused=bool(policy and policy.paused))
    workload = state.workload
    decision = demand = None
    estimated, limited, reason = None, (), ""
    anomalies = state.anomalies
    if capacity is None:
        reason = f"{layout.gpu} x{layout.gpus_per_replica} is not among the plan's options: capacity unknown"
    if len(times):
        usable = capacity.requests_per_second if capacity else Interval(1.0, 1.0, 1.0)
        result = assess(
            workload, times, values, now, usable, layout.replicas, scaling.target_utilization, guardrails
        )
        workload, demand = result.state, result.demand
        judged = result.anomalies
        flagged = [
            (float(t), float(v), float(s))
            for t, v, s, a in zip(times, values, judged.score, judged.anomaly, strict=True)
            if a
        ]
        anomalies = (*anomalies, *flagged)[-ANOMALIES_KEPT:]
        if capacity is not None:
            decision, estimated, limited = result.decision, result.estimated, result.limited_by
            reason = result.reason
    elif not reason:
        reason = "no new demand rows since the last evaluation"
    load = Load(
        observed.request_rate or 0.0,
        round(observed.output_tokens) if observed.output_tokens else output_tokens,
        concurrency,
    )
    hardware = hardware_decision(
        plan, layout, load, policy, previous=state.hardware, slo_missed=_slo_missed(spec, observed)
    )
    precision = precision_decision(plan, decode_bound(spec, layout.gpu, layout.gpus_per_replica))
    fed = float(times[-1]) if len(times) else state.fed_until
    state = replace(
        state,
        workload=workload,
        evidence=evidence,
        hardware=hardware,
        anomalies=anomalies,
        fed_until=fed,
        history_points=state.history_points + len(times),
    )
    horizon = state.startup + state.step
    return DeploymentEvaluation(
        observed=observed,
        capacity=capacity,
        demand=demand,
        horizon=horizon,
        forecast_reason=reason if demand is None else "",
        decision=decision,
        estimated=estimated,
        limited_by=limited,
        hardware=hardware,
        precision=precision,
        state=state,
        reason=reason,
        anomalies=anomalies,
    )
