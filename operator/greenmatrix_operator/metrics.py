"""The operator's own Prometheus metrics, typed, served as text on /metrics (aiohttp ships with Kopf).

Besides the loop's counters, `greenmatrix_recommendations{gpu}` counts the WorkloadProfiles whose
current recommendation is each GPU type (`gpu="none"`: profiles without one; their Ready condition
says why), so a dashboard shows where recommendations point and how node changes move them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from aiohttp import web

from greenmatrix_operator.records import OPTIMIZATION_POLICY, WORKLOAD_PROFILE
from greenmatrix_operator.settings import ServerSettings

_PREFIX = "greenmatrix_operator_"


def _series(name: str, label: str | None, value: str | None) -> str:
    return f'{name}{{{label}="{value}"}}' if label else name


class Counter:
    """A counter with at most one label; the label's known values are exposed from the start (at 0)."""

    def __init__(self, name: str, label: str | None = None, values: Iterable[str] = ()) -> None:
        self.name = name
        self.label = label
        self._counts: dict[str | None, int] = {v: 0 for v in values} if label else {None: 0}

    def inc(self, value: str | None = None, amount: int = 1) -> None:
        self._counts[value] = self._counts.get(value, 0) + amount

    def value(self, value: str | None = None) -> int:
        return self._counts.get(value, 0)

    def exposition(self) -> list[str]:
        lines = [f"# TYPE {self.name} counter"]
        return lines + [f"{_series(self.name, self.label, v)} {n}" for v, n in self._counts.items()]


class Summary:
    """Durations observed: their sum and count (no quantiles)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sum = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        self.sum += seconds
        self.count += 1

    def exposition(self) -> list[str]:
        return [
            f"# TYPE {self.name} summary",
            f"{self.name}_sum {self.sum:.6f}",
            f"{self.name}_count {self.count}",
        ]


class Gauge:
    """A value read when scraped, from the function the owner of the state sets (None: 0)."""

    def __init__(self, name: str, label: str | None = None) -> None:
        self.name = name
        self.label = label
        self._read: Callable[[], Mapping[str | None, int]] = lambda: {None: 0}

    def set_function(self, read: Callable[[], Mapping[str | None, int]]) -> None:
        """`read` gives the value per label value (the key None for a gauge without a label)."""
        self._read = read

    def exposition(self) -> list[str]:
        values = self._read()
        lines = [f"# TYPE {self.name} gauge"]
        return lines + [f"{_series(self.name, self.label, v)} {values[v]}" for v in sorted(values, key=str)]


class WorkloadGauge:
    """One value per WorkloadProfile, labelled by its namespace and name, read when scraped."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._read: Callable[[], Mapping[tuple[str, str], float]] = dict

    def set_function(self, read: Callable[[], Mapping[tuple[str, str], float]]) -> None:
        """`read` gives the value per (namespace, name)."""
        self._read = read

    def exposition(self) -> list[str]:
        values = self._read()
        lines = [f"# TYPE {self.name} gauge"]
        return lines + [
            f'{self.name}{{namespace="{ns}",name="{name}"}} {values[ns, name]}' for ns, name in sorted(values)
        ]


_KINDS = (WORKLOAD_PROFILE, OPTIMIZATION_POLICY)


@dataclass
class OperatorMetrics:
    """Every metric the operator exposes, in the order /metrics shows them."""

    reconciles: Counter = field(default_factory=lambda: Counter(_PREFIX + "reconciles_total", "kind", _KINDS))
    status_writes: Counter = field(
        default_factory=lambda: Counter(_PREFIX + "status_writes_total", "kind", _KINDS)
    )
    events: Counter = field(
        default_factory=lambda: Counter(_PREFIX + "events_total", "type", ("Normal", "Warning"))
    )
    reconcile_errors: Counter = field(default_factory=lambda: Counter(_PREFIX + "reconcile_errors_total"))
    node_changes: Counter = field(default_factory=lambda: Counter(_PREFIX + "node_changes_total"))
    plan_cache_hits: Counter = field(default_factory=lambda: Counter(_PREFIX + "plan_cache_hits_total"))
    plan_duration: Summary = field(default_factory=lambda: Summary(_PREFIX + "plan_duration_seconds"))
    live_evaluations: Counter = field(default_factory=lambda: Counter(_PREFIX + "live_evaluations_total"))
    metrics_unavailable: Counter = field(
        default_factory=lambda: Counter(_PREFIX + "metrics_unavailable_total", "reason")
    )
    actions: Counter = field(
        default_factory=lambda: Counter(
            _PREFIX + "actions_total", "result", ("Applied", "DryRun", "Superseded", "Failed")
        )
    )
    """Replica changes auto-apply made (Applied), recorded only (DryRun), dropped because the target
    changed first (Superseded) or had refused (Failed)."""
    action_blocks: Counter = field(default_factory=lambda: Counter(_PREFIX + "action_blocks_total", "reason"))
    """Decisions to change replicas under an Auto policy that were not applied, by the reason."""
    rollbacks: Counter = field(default_factory=lambda: Counter(_PREFIX + "rollbacks_total"))
    action_patch: Summary = field(default_factory=lambda: Summary(_PREFIX + "action_patch_seconds"))
    """From an action's decision to its scale patch confirmed (the intent's status write between)."""
    verifications: Counter = field(default_factory=lambda: Counter(_PREFIX + "verifications_total", "result"))
    workloads_without_metrics: Gauge = field(
        default_factory=lambda: Gauge(_PREFIX + "workloads_without_metrics")
    )
    """Live workloads whose last evaluation could not read their metrics: blind, so nothing is applied."""
    queue_depth: Gauge = field(default_factory=lambda: Gauge(_PREFIX + "queue_depth"))
    queue_in_progress: Gauge = field(default_factory=lambda: Gauge(_PREFIX + "queue_in_progress"))
    recommendations: Gauge = field(default_factory=lambda: Gauge("greenmatrix_recommendations", "gpu"))
    desired_replicas: WorkloadGauge = field(
        default_factory=lambda: WorkloadGauge("greenmatrix_workload_desired_replicas")
    )
    """Each live workload's replicas after the guardrails: what an HPA (external metric) or a KEDA
    ScaledObject (prometheus trigger) can scale on, so that one controller owns the field."""
    current_replicas: WorkloadGauge = field(
        default_factory=lambda: WorkloadGauge("greenmatrix_workload_current_replicas")
    )
    """Each live workload's replicas as its target asks for them now."""
    usd_per_hour: WorkloadGauge = field(
        default_factory=lambda: WorkloadGauge("greenmatrix_workload_usd_per_hour")
    )
    """Predicted price per hour of the recommended option (list price; absent without one)."""
    watts: WorkloadGauge = field(default_factory=lambda: WorkloadGauge("greenmatrix_workload_watts"))
    """Predicted facility power of the recommended option."""
    grams_co2_per_hour: WorkloadGauge = field(
        default_factory=lambda: WorkloadGauge("greenmatrix_workload_grams_co2_per_hour")
    )
    """Predicted emissions per hour of the recommended option (gCO2eq, at its region's grid intensity)."""

    def render(self) -> str:
        """Prometheus text exposition of every metric."""
        metrics = (
            self.reconciles,
            self.status_writes,
            self.events,
            self.reconcile_errors,
            self.node_changes,
            self.plan_cache_hits,
            self.plan_duration,
            self.live_evaluations,
            self.metrics_unavailable,
            self.actions,
            self.action_blocks,
            self.rollbacks,
            self.action_patch,
            self.verifications,
            self.workloads_without_metrics,
            self.queue_depth,
            self.queue_in_progress,
            self.recommendations,
            self.desired_replicas,
            self.current_replicas,
            self.usd_per_hour,
            self.watts,
            self.grams_co2_per_hour,
        )
        return "\n".join(line for metric in metrics for line in metric.exposition()) + "\n"


async def serve(metrics: OperatorMetrics, settings: ServerSettings) -> web.AppRunner:
    """Start the /metrics endpoint; the caller cleans up the returned runner."""

    async def handle(_: web.Request) -> web.Response:
        return web.Response(text=metrics.render(), content_type="text/plain", charset="utf-8")

    app = web.Application()
    app.router.add_get("/metrics", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.metrics_port).start()
    return runner
