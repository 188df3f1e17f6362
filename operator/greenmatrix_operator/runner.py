"""The operator's process: the engine's models loaded once, Kopf's watches and the reconciler's workers."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import sys
import time
from typing import Any

import click
import kopf
import kubernetes

from greenmatrix import Predictors
from greenmatrix_operator import handlers, metrics
from greenmatrix_operator.adapters.kube import KubeClient, TargetReader
from greenmatrix_operator.adapters.listing import ProfileLister, listed_with_retries
from greenmatrix_operator.adapters.prometheus import Prometheus
from greenmatrix_operator.adapters.scale import ScaleClient
from greenmatrix_operator.control.actuator import Actuator
from greenmatrix_operator.control.live import LiveLoop
from greenmatrix_operator.control.peering import Activity
from greenmatrix_operator.control.profiles import ProfileStore
from greenmatrix_operator.control.reconciler import Reconciler
from greenmatrix_operator.records import WORKLOAD_PROFILE, ObjectRecord
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
    # Policies wait for the start's listing of the profiles (see `control.profiles`).
    reconciler = Reconciler(kube, settings, predictors=predictors, profiles=ProfileStore(listed=False))
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
    identity = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
    namespaces = list(settings.watching.namespaces)
    # Started before Kopf: Kopf's shutdown waits for tasks born after it started, ours are ours to stop.
    tasks = reconciler.start()
    tasks.append(asyncio.create_task(prime_profiles(kube, settings, reconciler), name="greenmatrix listing"))
    if not settings.peering.standalone:
        reconciler.activity = peering_activity(kube, settings, identity, namespaces)
        tasks.append(asyncio.create_task(reconciler.activity.run(), name="greenmatrix peering"))
        logger.info(
            "peering %r as %s, priority %s", settings.peering.name, identity, settings.peering.priority
        )
    servers = settings.servers
    runner = await metrics.serve(reconciler.metrics, servers) if servers.metrics_port else None
    try:
        await kopf.operator(
            registry=registry,
            settings=kopf_settings(settings),
            clusterwide=not namespaces,
            namespaces=namespaces,
            standalone=settings.peering.standalone,
            peering_name=settings.peering.name,
            identity=identity,  # type: ignore[arg-type]
            priority=settings.peering.priority,
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
        await kube.aclose()


async def prime_profiles(kube: KubeClient, settings: OperatorSettings, reconciler: Reconciler) -> None:
    """List the profiles that exist once, so the policies are counted on the whole set (without it, a
    policy's count would be written from a partial set and again later)."""
    started = time.perf_counter()
    lister = ProfileLister(kube.api_client, settings.api)
    records = await listed_with_retries(
        lambda: lister.list(
            settings.watching.namespaces,
            lambda body: ObjectRecord.from_body(WORKLOAD_PROFILE, body, pack=True),
        ),
        settings.retries.delays,
    )
    records = records or []
    added = reconciler.profiles.prime(records)
    logger.info(
        "listed %d WorkloadProfiles at start in %.2fs (%d not yet seen on the watch)",
        len(records),
        time.perf_counter() - started,
        added,
    )


def peering_activity(
    kube: KubeClient, settings: OperatorSettings, identity: str, namespaces: list[str]
) -> Activity:
    """Follows the peering object Kopf keeps: the cluster-wide one, or the one in the first namespace
    served (Kopf keeps one per namespace; every replica serves the same ones)."""
    custom = kubernetes.client.CustomObjectsApi(kube.api_client)
    name = str(settings.peering.name)
    timeout = (settings.api.connect_timeout, settings.api.read_timeout)

    def get() -> Any:
        if not namespaces:
            return custom.get_cluster_custom_object(
                "kopf.dev", "v1", "clusterkopfpeerings", name, _request_timeout=timeout
            )
        return custom.get_namespaced_custom_object(
            "kopf.dev", "v1", namespaces[0], "kopfpeerings", name, _request_timeout=timeout
        )

    async def read() -> Any:
        return (await asyncio.to_thread(get)).get("status") or {}

    def create() -> None:
        """Kopf keeps alive in the peering objects but does not create them: the first replica does
        (one cluster-wide, or one per namespace named without a glob)."""
        body = {"apiVersion": "kopf.dev/v1", "metadata": {"name": name}}
        places = [None] if not namespaces else [ns for ns in namespaces if not set(ns) & set("*?[")]
        for namespace in places:
            try:
                if namespace is None:
                    custom.create_cluster_custom_object(
                        "kopf.dev", "v1", "clusterkopfpeerings", {**body, "kind": "ClusterKopfPeering"}
                    )
                else:
                    custom.create_namespaced_custom_object(
                        "kopf.dev", "v1", namespace, "kopfpeerings", {**body, "kind": "KopfPeering"}
                    )
            except kubernetes.client.ApiException as err:
                if err.status != 409:  # 409: another replica made it first
                    logger.warning("could not create the peering object %r: %s", name, err.reason)
            except Exception as err:  # unreachable now: Kopf waits for it, and says so
                logger.warning("could not create the peering object %r: %s", name, err)

    create()

    return Activity(read, identity, int(settings.peering.priority or 0), settings.peering.lifetime)


def serve(settings: OperatorSettings) -> None:
    """Run the operator with these settings until signalled; a missing or refused login exits 2."""
    try:
        kube = KubeClient.from_environment(settings.api)
    except kubernetes.config.ConfigException as err:
        click.echo(f"error: cluster connection settings (in-cluster or kubeconfig): {err}", err=True)
        sys.exit(2)
    try:
        asyncio.run(run(kube, settings))
    except kopf.LoginError as err:
        click.echo(f"error: cannot authenticate to the cluster: {err}", err=True)
        sys.exit(2)
