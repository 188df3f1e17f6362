"""The live loop: each WorkloadProfile with a targetRef is evaluated once per interval against what
Prometheus says its target serves, through the same work queue as everything else.

One evaluation reads like the sentence: read the target (its replicas and where its pods run), read
the metrics (the present by instant queries, only the demand rows not yet fed by a range query),
plan the workload at the load it is seen serving, then make the one engine call
(`evaluate_deployment`) that learns the capacity, forecasts, sizes and reviews the hardware. The
engine's state per workload is kept here between evaluations. Failures at the boundary become
MetricsAvailable=False with their reason; the recommendation falls back to the spec's own load.

Evaluations are spread over the interval (a random phase per workload), so 10,000 profiles make a
steady trickle of queries, not a storm each interval.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError

from greenmatrix import (
    DeploymentEvaluation,
    DeploymentState,
    Layout,
    Observed,
    Sample,
    WorkloadProfileSpec,
    at_observed_batch,
    at_observed_load,
    duration_seconds,
    evaluate_deployment,
)
from greenmatrix_operator.adapters import kube
from greenmatrix_operator.adapters.observe import Observation, observe
from greenmatrix_operator.adapters.prometheus import MetricsError, Prometheus
from greenmatrix_operator.adapters.queries import Scope, queries_for, scope_of
from greenmatrix_operator.records import ObjectKey, PolicyView
from greenmatrix_operator.settings import LiveSettings
from greenmatrix_operator.status import live as live_status
from greenmatrix_operator.status.conditions import ConditionState

logger = logging.getLogger(__name__)

TARGET_NOT_FOUND = "TargetNotFound"
TARGET_UNREADABLE = "TargetUnreadable"
NO_PODS = "NoReadyPods"
NO_DATA = "NoData"
STALE = "Stale"
NO_GPU = "UnknownTargetHardware"


@dataclass(frozen=True)
class LiveView:
    """The live part of a status, as of the last evaluation."""

    conditions: tuple[ConditionState, ...]
    fields: Mapping[str, Any] = field(default_factory=dict)
    observed: Observed | None = None
    """The figures the recommendation is planned at (None: the spec's own load)."""
    basis: str | None = None
    """What corrected the predictions, for the recommendation's basis."""


@dataclass(frozen=True)
class Reading:
    """What one evaluation read: the target, its layout and the metrics."""

    target: kube.Target
    layout: Layout
    observation: Observation
    observed: Observed


@dataclass
class _Memory:
    step: float
    state: DeploymentState
    next_at: float
    view: LiveView | None = None
    target: tuple[str, str] | None = None
    """The target the state learnt from: another one starts over."""


class LiveLoop:
    """Schedules and runs the live evaluations; keeps each workload's engine state."""

    def __init__(
        self,
        prometheus: Prometheus,
        targets: kube.TargetReader,
        settings: LiveSettings,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.prometheus = prometheus
        self.targets = targets
        self.settings = settings
        self.clock = clock
        self.rng = rng or random.Random()
        self._memory: dict[ObjectKey, _Memory] = {}

    # --- schedule ----------------------------------------------------------------------------

    def interval_of(self, policy: PolicyView | None) -> float:
        """The policy's evaluationInterval, at least a scrape: faster would read the same samples."""
        if policy is None:
            return self.settings.default_interval
        return max(duration_seconds(policy.spec.evaluation_interval), self.settings.scrape_interval)

    def _memory_for(self, key: ObjectKey, step: float) -> _Memory:
        memory = self._memory.get(key)
        if memory is None or memory.step != step:
            # A random phase within the interval spreads the first evaluations of many workloads.
            first = self.clock() + (self.rng.uniform(0, step) if memory is None else 0.0)
            memory = _Memory(step, DeploymentState.start(step, self.settings.startup), first)
            self._memory[key] = memory
        return memory

    def due(self, key: ObjectKey, policy: PolicyView | None) -> bool:
        return self.clock() >= self._memory_for(key, self.interval_of(policy)).next_at

    def delay(self, key: ObjectKey) -> float | None:
        """Seconds until this workload's next evaluation (None: not tracked)."""
        memory = self._memory.get(key)
        return None if memory is None else max(memory.next_at - self.clock(), 0.0)

    def acted_at(self, key: ObjectKey, at: float | None) -> None:
        """The replicas were last changed at `at` (auto-apply's record): the guardrails count from it."""
        memory = self._memory.get(key)
        if memory is not None:
            memory.state = memory.state.acted_at(at)

    def blind(self) -> int:
        """Workloads whose last evaluation could not read their metrics (MetricsAvailable=False)."""
        return sum(
            1
            for memory in self._memory.values()
            if memory.view is not None
            and any(c.type == "MetricsAvailable" and c.status == "False" for c in memory.view.conditions)
        )

    def tracks(self, key: ObjectKey) -> bool:
        """Whether this workload is evaluated (it has a targetRef and serves requests)."""
        return key in self._memory

    def view(self, key: ObjectKey) -> LiveView | None:
        memory = self._memory.get(key)
        return None if memory is None else memory.view

    def forget(self, key: ObjectKey) -> None:
        self._memory.pop(key, None)

    # --- read --------------------------------------------------------------------------------

    async def read(
        self, key: ObjectKey, spec: Mapping[str, Any], policy: PolicyView | None
    ) -> Reading | LiveView:
        """The target and its metrics, or the view saying why they could not be read."""
        memory = self._memory_for(key, self.interval_of(policy))
        now = self.clock()
        memory.next_at = now + memory.step
        ref = spec.get("targetRef") or {}
        kind, name = str(ref.get("kind", "Deployment")), str(ref.get("name", ""))
        if memory.target not in (None, (kind, name)):
            memory.state, memory.view = DeploymentState.start(memory.step, self.settings.startup), None
        memory.target = (kind, name)
        where = f"spec.targetRef: {kind} {key.namespace}/{name}"
        try:
            body = await self.targets.read(key.namespace, kind, name)
        except kube.Gone:
            return self._failed(memory, TARGET_NOT_FOUND, f"{where} does not exist")
        except kube.KubeError as err:  # refused (RBAC) or unreachable: said, and tried next interval
            return self._failed(memory, TARGET_UNREADABLE, f"{where} could not be read: {err}")
        target = kube.target_of(body)
        if target.ready_replicas < 1:
            return self._failed(memory, NO_PODS, f"{where} has no ready pods")
        scope = scope_of(key.namespace, ref)
        if target.gpu_product is None:
            target = replace(target, gpu_product=await self._dcgm_product(scope))
        if target.gpu_product is None or target.gpus_per_replica < 1:
            return self._failed(
                memory,
                NO_GPU,
                f"{where}: its pods request no nvidia.com/gpu, or neither a nodeSelector on"
                " nvidia.com/gpu.product nor DCGM's modelName says which GPU they run on",
            )
        framework = str((spec.get("model") or {}).get("framework", "vllm"))
        window = max(memory.step, 4 * self.settings.scrape_interval)
        queries = queries_for(spec.get("metrics"), framework, scope, window)
        try:
            seen = await observe(
                self.prometheus,
                queries,
                now,
                memory.state.fed_until,
                self.settings.history,
                memory.step,
            )
        except MetricsError as err:
            return self._failed(memory, err.reason, str(err))
        if seen.present.get("request_rate") is None and "request_rate" not in seen.rejected:
            query = queries["request_rate"].promql
            return self._failed(memory, NO_DATA, f"no samples for the request rate ({query}) of {where}")
        if seen.stale:
            newest = live_status.rfc3339(seen.as_of or now)
            return self._failed(memory, STALE, f"the newest sample of {where} is from {newest}")
        layout = Layout(target.gpu_product, target.gpus_per_replica, target.replicas)
        return Reading(target, layout, seen, observed_of(seen, target, now))

    async def _dcgm_product(self, scope: Scope) -> str | None:
        """The GPU model DCGM reports for the target's pods (its `modelName` label), for a target whose
        template pins none: no need to read its pods."""
        query = f"count by (modelName) (DCGM_FI_DEV_GPU_UTIL{scope.selector()})"
        try:
            found = await self.prometheus.instant(query, self.clock())
        except MetricsError:
            return None
        names = [s.labels.get("modelName", "") for s in found if s.labels.get("modelName")]
        # GPU Feature Discovery's spelling (dashes for spaces), which the catalog reads.
        return names[0].replace(" ", "-") if len(set(names)) == 1 else None

    def _failed(self, memory: _Memory, reason: str, message: str) -> LiveView:
        """MetricsAvailable=False; the last figures kept (their asOf says how old), no decision."""
        kept = {}
        if memory.view is not None:
            kept = {k: v for k, v in memory.view.fields.items() if k in ("observed", "anomalies")}
        memory.view = LiveView(live_status.metrics_unavailable(reason, message), kept)
        return memory.view

    # --- evaluate (in a worker thread: it plans and runs the engine) -------------------------

    def planned_spec(
        self, key: ObjectKey, parsed: WorkloadProfileSpec, reading: Reading | None
    ) -> WorkloadProfileSpec:
        """The spec the recommendation is planned for: at the observed load once there is one."""
        observed = reading.observed if reading is not None else None
        if observed is None:
            view = self.view(key)
            observed = view.observed if view is not None else None
        return at_observed_load(parsed, observed) if observed is not None else parsed

    def evaluate(
        self,
        key: ObjectKey,
        parsed: WorkloadProfileSpec,
        reading: Reading,
        plans: Callable[[WorkloadProfileSpec], Any],
        policy: PolicyView | None,
    ) -> LiveView:
        """One engine call on what was read; `plans(spec)` plans a spec on the cluster's inventory."""
        memory = self._memory[key]
        plan = plans(at_observed_load(parsed, reading.observed))
        batch_spec = at_observed_batch(parsed, reading.observed, reading.target.ready_replicas)
        seen_plan = plans(batch_spec) if batch_spec is not None else None
        if plan is None:
            return self._failed(memory, NO_DATA, "no plan at the observed load")
        o = reading.observation
        result: DeploymentEvaluation = evaluate_deployment(
            parsed,
            plan,
            reading.layout,
            reading.observed,
            o.demand_timestamps,
            o.demand_values,
            max(self.clock(), o.demand_timestamps[-1] if len(o.demand_timestamps) else 0.0),
            policy.spec if policy else None,
            memory.state,
            seen_plan,
        )
        memory.state = result.state
        basis = planned_basis(reading.observed, result)
        memory.view = LiveView(
            live_status.live_conditions(result, o.rejected),
            live_status.live_fields(result),
            reading.observed,
            basis,
        )
        return memory.view


def parse_spec(spec: Mapping[str, Any]) -> WorkloadProfileSpec | None:
    try:
        return WorkloadProfileSpec.model_validate(spec)
    except ValidationError:
        return None


def observed_of(seen: Observation, target: kube.Target, now: float) -> Observed:
    """The engine's view of the figures read (GPU utilisation in percent, as DCGM reports it)."""
    p = seen.present
    return Observed(
        as_of=seen.as_of if seen.as_of is not None else now,
        request_rate=p.get("request_rate"),
        prompt_tokens_rate=p.get("prompt_tokens_rate"),
        generation_tokens_rate=p.get("generation_tokens_rate"),
        ttft_p95_s=p.get("ttft_p95_seconds"),
        tpot_p95_s=p.get("tpot_p95_seconds"),
        ttft_mean_s=p.get("ttft_mean_seconds"),
        tpot_mean_s=p.get("tpot_mean_seconds"),
        running_requests=p.get("running_requests"),
        waiting_requests=p.get("waiting_requests"),
        kv_cache_usage=p.get("kv_cache_usage"),
        gpu_utilization=p.get("gpu_utilization"),
        power_watts=p.get("power_watts"),
        ready_replicas=target.ready_replicas,
    )


def planned_basis(observed: Observed, result: DeploymentEvaluation) -> str:
    """What the recommendation's numbers rest on once the deployment is seen serving."""
    parts = []
    if observed.request_rate is not None:
        lengths = ""
        if observed.input_tokens is not None and observed.output_tokens is not None:
            lengths = f" of {observed.input_tokens:.0f} prompt and {observed.output_tokens:.0f} output tokens"
        parts.append(f"planned at the observed {observed.request_rate:.3g} requests/s{lengths}")
    if result.capacity is not None:
        parts.append(f"capacity per replica {result.capacity.basis}")
    return "; ".join(parts)


def sample_of(observed: Any, ready_replicas: int, capacity_p50: float | None) -> Sample:
    """What verification reads from one evaluation: the SLO figures and the load on each replica."""
    utilization = None
    if observed.request_rate is not None and capacity_p50 and ready_replicas > 0:
        utilization = observed.request_rate / (ready_replicas * capacity_p50)
    return Sample(
        at=observed.as_of,
        ready_replicas=ready_replicas,
        utilization=utilization,
        ttft_p95_ms=None if observed.ttft_p95_s is None else observed.ttft_p95_s * 1e3,
        tpot_p95_ms=None if observed.tpot_p95_s is None else observed.tpot_p95_s * 1e3,
    )
