"""The operator's own Prometheus metrics, served as text on /metrics (aiohttp ships with Kopf).

Besides the loop's counters, `greenmatrix_recommendations{gpu}` counts the WorkloadProfiles whose
current recommendation is each GPU type (`gpu="none"`: profiles without one; their Ready condition
says why), so a dashboard shows where recommendations point and how node changes move them.
"""

from __future__ import annotations

from collections import Counter

from aiohttp import web

from greenmatrix_operator.reconciler import Reconciler

_COUNTERS = (
    ("reconciles_WorkloadProfile", "reconciles_total", 'kind="WorkloadProfile"'),
    ("reconciles_OptimizationPolicy", "reconciles_total", 'kind="OptimizationPolicy"'),
    ("status_writes_WorkloadProfile", "status_writes_total", 'kind="WorkloadProfile"'),
    ("status_writes_OptimizationPolicy", "status_writes_total", 'kind="OptimizationPolicy"'),
    ("events_Normal", "events_total", 'type="Normal"'),
    ("events_Warning", "events_total", 'type="Warning"'),
    ("errors", "reconcile_errors_total", ""),
    ("node_changes", "node_changes_total", ""),
    ("plan_cache_hits", "plan_cache_hits_total", ""),
)
_PREFIX = "greenmatrix_operator_"


def render(reconciler: Reconciler) -> str:
    """Prometheus text exposition of the reconciler's counters and queue gauges."""
    lines: list[str] = []
    seen: set[str] = set()
    for stat, metric, labels in _COUNTERS:
        name = _PREFIX + metric
        if name not in seen:
            lines.append(f"# TYPE {name} counter")
            seen.add(name)
        lines.append(
            f"{name}{{{labels}}} {reconciler.stats[stat]}" if labels else f"{name} {reconciler.stats[stat]}"
        )
    lines += [
        f"# TYPE {_PREFIX}plan_duration_seconds summary",
        f"{_PREFIX}plan_duration_seconds_sum {reconciler.plan_seconds:.6f}",
        f"{_PREFIX}plan_duration_seconds_count {reconciler.stats['plans']}",
        f"# TYPE {_PREFIX}queue_depth gauge",
        f"{_PREFIX}queue_depth {len(reconciler.queue)}",
        f"# TYPE {_PREFIX}queue_in_progress gauge",
        f"{_PREFIX}queue_in_progress {reconciler.queue.processing}",
    ]
    by_gpu = Counter(gpu or "none" for gpu in reconciler.recommended.values())
    lines.append("# TYPE greenmatrix_recommendations gauge")
    lines += [f'greenmatrix_recommendations{{gpu="{gpu}"}} {by_gpu[gpu]}' for gpu in sorted(by_gpu)]
    return "\n".join(lines) + "\n"


async def serve(reconciler: Reconciler, port: int, host: str = "0.0.0.0") -> web.AppRunner:
    """Start the /metrics endpoint; the caller cleans up the returned runner."""

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text=render(reconciler), content_type="text/plain", charset="utf-8")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
