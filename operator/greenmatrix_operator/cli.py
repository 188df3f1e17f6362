"""`greenmatrix operator`: run the operator against the current kubeconfig (or in-cluster credentials)."""

from __future__ import annotations

import logging
import os
import random
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from greenmatrix_operator.settings import (
    ActuationSettings,
    LiveSettings,
    OperatorSettings,
    PeeringSettings,
    QueueSettings,
    ServerSettings,
    WatchingSettings,
)

DEFAULTS = OperatorSettings()
F = TypeVar("F", bound=Callable[..., Any])


def _setting(name: str, kind: click.ParamType | type, default: object, text: str) -> Callable[[F], F]:
    """An option that overrides one of the operator's settings; --help shows the setting's default."""
    return click.option(name, type=kind, default=default, show_default=True, help=text)


@click.command("operator")
@click.option(
    "--namespace",
    "-n",
    "namespaces",
    multiple=True,
    help="Serve WorkloadProfiles and OptimizationPolicies in this namespace (repeatable; glob patterns"
    " allowed). Default: the whole cluster.",
)
@_setting("--health-port", int, DEFAULTS.servers.health_port, "Liveness /healthz port; 0 disables.")
@_setting("--metrics-port", int, DEFAULTS.servers.metrics_port, "Prometheus /metrics port; 0 disables.")
@click.option(
    "--peering",
    default=None,
    metavar="NAME",
    help="Kopf peering object for running several replicas (one active). Default: standalone, no peering.",
)
@click.option(
    "--priority",
    type=click.IntRange(0, 2**31 - 1),
    default=None,
    help="With --peering: this replica's priority (the highest live one works). Default: random, so two"
    " replicas never tie.",
)
@_setting(
    "--peering-lifetime",
    click.IntRange(5, 3600),
    DEFAULTS.peering.lifetime,
    "With --peering: seconds a keep-alive lasts; a killed active replica is replaced within about this.",
)
@_setting("--workers", click.IntRange(1, 64), DEFAULTS.queue.workers, "Concurrent reconciles.")
@_setting(
    "--debounce",
    click.FloatRange(0, 60),
    DEFAULTS.queue.debounce,
    "Seconds to gather bursts of changes into one reconcile per object.",
)
@click.option(
    "--prometheus-url",
    envvar="GREENMATRIX_PROMETHEUS_URL",
    default=None,
    metavar="URL",
    help="Prometheus to read live metrics from (env GREENMATRIX_PROMETHEUS_URL). Default: no live loop.",
)
@_setting(
    "--startup",
    click.FloatRange(0, 3600),
    DEFAULTS.live.startup,
    "Seconds a new replica takes to serve (the forecast looks this far ahead plus one interval).",
)
@_setting(
    "--history",
    click.FloatRange(0, 30 * 86_400),
    DEFAULTS.live.history,
    "Seconds of demand history read at a workload's first evaluation.",
)
@_setting(
    "--scrape-interval",
    click.FloatRange(1, 600),
    DEFAULTS.live.scrape_interval,
    "Prometheus's scrape interval in seconds (rate windows span at least four).",
)
@click.option(
    "--auto-apply/--no-auto-apply",
    envvar="GREENMATRIX_AUTO_APPLY",
    default=DEFAULTS.actuation.enabled,
    show_default=True,
    help="The admin's switch: let policies with mode Auto scale their targets (needs the scale rights of"
    " the chart's autoApply.enabled or the auto-apply overlay, and --prometheus-url).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    envvar="GREENMATRIX_DRY_RUN",
    help="With --auto-apply: record the actions in the status and as Events, patch nothing.",
)
@_setting(
    "--verify-settle",
    click.FloatRange(0, 3600),
    DEFAULTS.actuation.settle,
    "Seconds after an action's replicas are ready before its verification window opens.",
)
@_setting(
    "--verify-window",
    click.FloatRange(30, 6 * 3600),
    DEFAULTS.actuation.window,
    "Seconds of an action's verification window.",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def command(
    namespaces: tuple[str, ...],
    health_port: int,
    metrics_port: int,
    peering: str | None,
    priority: int | None,
    peering_lifetime: int,
    workers: int,
    debounce: float,
    prometheus_url: str | None,
    startup: float,
    history: float,
    scrape_interval: float,
    auto_apply: bool,
    dry_run: bool,
    verify_settle: float,
    verify_window: float,
    verbose: bool,
) -> None:
    """Run the GreenMatrix operator against the current kubeconfig context."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        logging.getLogger("kopf").setLevel(logging.WARNING)
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    settings = OperatorSettings(
        queue=QueueSettings(debounce=debounce, workers=workers),
        servers=ServerSettings(health_port=health_port, metrics_port=metrics_port),
        peering=PeeringSettings(
            name=peering,
            priority=priority if priority is not None or not peering else random.randrange(1, 2**31 - 1),
            lifetime=peering_lifetime,
        ),
        watching=WatchingSettings(namespaces=namespaces),
        live=LiveSettings(
            prometheus_url=prometheus_url or None,
            startup=startup,
            history=history,
            scrape_interval=scrape_interval,
        ),
        actuation=ActuationSettings(
            enabled=auto_apply,
            dry_run=dry_run,
            settle=verify_settle,
            window=verify_window,
            crash_after_intent=os.environ.get("GREENMATRIX_FAULT_CRASH_AFTER_INTENT") == "1",
        ),
    )
    if auto_apply and not prometheus_url:
        # Not an exit: an overlay that grants auto-apply before Prometheus is configured must not
        # crash-loop the operator; it recommends, and says why nothing is applied.
        logging.getLogger(__name__).warning(
            "--auto-apply without --prometheus-url: nothing is applied without live metrics"
        )
    _without_estimator_wrappers()
    # Kopf, the Kubernetes client and the models load here, not for `greenmatrix operator --help`.
    from greenmatrix_operator.runner import serve

    serve(settings)


def _without_estimator_wrappers() -> None:
    """XGBoost imports scikit-learn, when it is installed, for estimator wrappers the operator never
    uses: 84 MB of resident memory and 0.7 s of start. The image has no scikit-learn; a development
    environment may (Prophet's benchmark), and must then run the operator as the image does."""
    if "xgboost" not in sys.modules:
        sys.modules.setdefault("sklearn", None)  # type: ignore[arg-type]
