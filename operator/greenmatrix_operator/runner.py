"""The operator's process: the engine's models loaded once, Kopf's watches and the reconciler's workers."""

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
from greenmatrix_operator.adapters.kube import KubeClient, TargetReader
from greenmatrix_operator.adapters.prometheus import Prometheus
from greenmatrix_operator.adapters.scale import ScaleClient
from greenmatrix_operator.control.actuator import Actuator
from greenmatrix_operator.control.live import LiveLoop
from greenmatrix_operator.control.reconciler import Reconciler
from greenmatrix_operator.settings import OperatorSettings, kopf_settings

logger = logging.getLogger(__name__)


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
    prometheus = None
    if settings.live.prometheus_url:
        prometheus = Prometheus(settings.live.prometheus_url, timeout=settings.live.timeout)
        reconciler.live = LiveLoop(
            prometheus,
            TargetReader(kube.api_client, settings.api),
            settings.live,
        )
        reconciler.actuator = Actuator(
            ScaleClient(kube.api_client, settings.api),
            TargetReader(kube.api_client, settings.api),
            kube.post_event,
            settings.actuation,
            reconciler.metrics,
        )
        logger.info("live loop on: metrics from %s", settings.live.prometheus_url)
        if settings.actuation.enabled:
            logger.info(
                "auto-apply on%s", " (dry run: nothing is patched)" if settings.actuation.dry_run else ""
            )
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
        if prometheus is not None:
            await prometheus.aclose()


def serve(settings: OperatorSettings) -> None:
    """Run the operator with these settings until signalled; a missing or refused login exits 2."""
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
