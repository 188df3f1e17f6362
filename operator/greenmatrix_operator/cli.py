"""`greenmatrix operator`: run the operator against the current kubeconfig (or in-cluster credentials)."""

from __future__ import annotations

import asyncio
import logging
import sys
import time

import click
import kopf
import kubernetes

from greenmatrix import Predictors
from greenmatrix_operator import handlers, metrics
from greenmatrix_operator.adapters.kube import KubeClient
from greenmatrix_operator.control.reconciler import Reconciler
from greenmatrix_operator.settings import (
    OperatorSettings,
    PeeringSettings,
    QueueSettings,
    ServerSettings,
    WatchingSettings,
    kopf_settings,
)

logger = logging.getLogger(__name__)
DEFAULTS = OperatorSettings()


async def run(kube: KubeClient, settings: OperatorSettings) -> None:
    """Run until signalled: Kopf's watches plus the reconciler's workers."""
    # The engine's models load once, here, before any worker can ask for a plan.
    started = time.perf_counter()
    predictors = Predictors.load()
    logger.info(
        "engine loaded in %.2fs (%s)",
        time.perf_counter() - started,
        "; ".join(predictors.notes) or "learned models",
    )
    reconciler = Reconciler(kube, settings, predictors=predictors)
    registry = kopf.OperatorRegistry()
    handlers.register(registry, reconciler)
    # Started before Kopf: Kopf's shutdown waits for tasks born after it started, ours are ours to stop.
    tasks = reconciler.start()
    servers = settings.servers
    runner = await metrics.serve(reconciler.metrics, servers) if servers.metrics_port else None
    namespaces = list(settings.watching.namespaces)
    try:
        await kopf.operator(
            registry=registry,
            settings=kopf_settings(settings),
            clusterwide=not namespaces,
            namespaces=namespaces,
            standalone=settings.peering.standalone,
            peering_name=settings.peering.name,
            liveness_endpoint=(
                f"http://{servers.host}:{servers.health_port}/healthz" if servers.health_port else None
            ),
        )
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if runner is not None:
            await runner.cleanup()


@click.command("operator")
@click.option(
    "--namespace",
    "-n",
    "namespaces",
    multiple=True,
    help="Serve WorkloadProfiles and OptimizationPolicies in this namespace (repeatable; glob patterns"
    " allowed). Default: the whole cluster.",
)
@click.option(
    "--health-port",
    type=int,
    default=DEFAULTS.servers.health_port,
    show_default=True,
    help="Liveness /healthz port; 0 disables.",
)
@click.option(
    "--metrics-port",
    type=int,
    default=DEFAULTS.servers.metrics_port,
    show_default=True,
    help="Prometheus /metrics port; 0 disables.",
)
@click.option(
    "--peering",
    default=None,
    metavar="NAME",
    help="Kopf peering object for running several replicas (one active). Default: standalone, no peering.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=DEFAULTS.queue.workers,
    show_default=True,
    help="Concurrent reconciles.",
)
@click.option(
    "--debounce",
    type=click.FloatRange(0, 60),
    default=DEFAULTS.queue.debounce,
    show_default=True,
    help="Seconds to gather bursts of changes into one reconcile per object.",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def command(
    namespaces: tuple[str, ...],
    health_port: int,
    metrics_port: int,
    peering: str | None,
    workers: int,
    debounce: float,
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
        peering=PeeringSettings(name=peering),
        watching=WatchingSettings(namespaces=namespaces),
    )
    try:
        kube = KubeClient.from_environment(settings.api)
    except kubernetes.config.ConfigException as err:
        click.echo(f"error: no cluster credentials (in-cluster or kubeconfig): {err}", err=True)
        sys.exit(2)
    try:
        asyncio.run(run(kube, settings))
    except kopf.LoginError as err:
        click.echo(f"error: cannot authenticate to the cluster: {err}", err=True)
        sys.exit(2)
