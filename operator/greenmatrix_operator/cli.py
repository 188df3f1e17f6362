"""`greenmatrix operator`: run the operator against the current kubeconfig (or in-cluster credentials)."""

from __future__ import annotations

import logging

import click

from greenmatrix_operator.settings import (
    OperatorSettings,
    PeeringSettings,
    QueueSettings,
    ServerSettings,
    WatchingSettings,
)

DEFAULTS = OperatorSettings()


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
    # Kopf, the Kubernetes client and the models load here, not for `greenmatrix operator --help`.
    from greenmatrix_operator.runner import serve

    serve(settings)
