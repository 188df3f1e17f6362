"""`greenmatrix operator`: run the operator against the current kubeconfig (or in-cluster credentials)."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Sequence

import click
import kopf
import kubernetes

from greenmatrix.predict.predictors import Predictors
from greenmatrix_operator import handlers, metrics
from greenmatrix_operator.kube import KubeClient
from greenmatrix_operator.reconciler import Reconciler

PREFIX = "greenmatrix.io"
logger = logging.getLogger(__name__)


def operator_settings(peering: str | None) -> kopf.OperatorSettings:
    """Kopf settings: nothing written on users' objects beyond GreenMatrix's own status."""
    settings = kopf.OperatorSettings()
    # Our handlers store no progress; should one ever need it, it goes to annotations under our
    # prefix, never to status.kopf (the CRD schema prunes unknown status fields).
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{PREFIX}/operator"
    # Events are posted deliberately by the reconciler; handler log lines stay in the log.
    settings.posting.enabled = False
    settings.peering.standalone = peering is None
    if peering is not None:
        settings.peering.name = peering
        settings.peering.mandatory = True
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    return settings


async def run(
    kube: KubeClient,
    namespaces: Sequence[str] = (),
    *,
    health_port: int = 0,
    metrics_port: int = 0,
    peering: str | None = None,
    workers: int = 2,
    debounce: float = 0.2,
    stop_flag: asyncio.Event | None = None,
    ready_flag: asyncio.Event | None = None,
) -> None:
    """Run until signalled (or `stop_flag` is set): Kopf's watches plus the reconciler's workers."""
    # The engine's models load once, here, before any worker can ask for a plan.
    started = time.perf_counter()
    predictors = Predictors.load()
    logger.info(
        "engine loaded in %.2fs (%s)",
        time.perf_counter() - started,
        "; ".join(predictors.notes) or "learned models",
    )
    reconciler = Reconciler(kube, debounce=debounce, workers=workers, predictors=predictors)
    registry = kopf.OperatorRegistry()
    handlers.register(registry, reconciler)
    # Started before Kopf: Kopf's shutdown waits for tasks born after it started, ours are ours to stop.
    tasks = reconciler.start()
    runner = await metrics.serve(reconciler, metrics_port) if metrics_port else None
    try:
        await kopf.operator(
            registry=registry,
            settings=operator_settings(peering),
            clusterwide=not namespaces,
            namespaces=list(namespaces),
            standalone=peering is None,
            peering_name=peering,
            liveness_endpoint=f"http://0.0.0.0:{health_port}/healthz" if health_port else None,
            stop_flag=stop_flag,
            ready_flag=ready_flag,
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
    "--health-port", type=int, default=8080, show_default=True, help="Liveness /healthz port; 0 disables."
)
@click.option(
    "--metrics-port", type=int, default=8081, show_default=True, help="Prometheus /metrics port; 0 disables."
)
@click.option(
    "--peering",
    default=None,
    metavar="NAME",
    help="Kopf peering object for running several replicas (one active). Default: standalone, no peering.",
)
@click.option(
    "--workers", type=click.IntRange(1, 64), default=2, show_default=True, help="Concurrent reconciles."
)
@click.option(
    "--debounce",
    type=click.FloatRange(0, 60),
    default=0.2,
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
    try:
        kube = KubeClient.from_environment()
    except kubernetes.config.ConfigException as err:
        click.echo(f"error: no cluster credentials (in-cluster or kubeconfig): {err}", err=True)
        sys.exit(2)
    try:
        asyncio.run(
            run(
                kube,
                namespaces,
                health_port=health_port,
                metrics_port=metrics_port,
                peering=peering,
                workers=workers,
                debounce=debounce,
            )
        )
    except kopf.LoginError as err:
        click.echo(f"error: cannot authenticate to the cluster: {err}", err=True)
        sys.exit(2)
