"""The scale adapter: a target's replicas changed through its scale subresource only (never its pod
template), and the other autoscalers of the same target found.

A patch carries the resourceVersion the decision was made on, so a target changed since (by a user,
a rollout, another controller) is never overwritten blindly: the API server answers 409 and the
caller reads it again. Faults become `ScaleForbidden` (no scale rights: the admin has not granted
auto-apply), `ScaleConflict` (the target moved under us) or the Kubernetes adapter's errors.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

import kubernetes

from greenmatrix import Autoscaler
from greenmatrix_operator.adapters.kube import KubeError, translate_error
from greenmatrix_operator.settings import ApiSettings

_MERGE_PATCH = "application/merge-patch+json"
KEDA = ("keda.sh", "v1alpha1", "scaledobjects")


class ScaleForbidden(KubeError):
    """403 on the scale subresource: the operator has no right to scale (auto-apply not granted)."""


class ScaleConflict(KubeError):
    """409: the target changed since it was read."""


def _refs(target_ref: Mapping[str, Any] | None, kind: str, name: str) -> bool:
    ref = target_ref or {}
    return str(ref.get("kind", "Deployment")) == kind and ref.get("name") == name


class ScaleClient:
    """Patches targets' scale subresources and lists the autoscalers that may already own them."""

    def __init__(
        self,
        api_client: kubernetes.client.ApiClient,
        settings: ApiSettings,
        *,
        ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        """Seconds one namespace's listing of autoscalers is reused."""
        self._clock = clock
        self._listed: dict[str, tuple[float, list[tuple[Autoscaler, Mapping[str, Any] | None]]]] = {}
        self._apps = kubernetes.client.AppsV1Api(api_client)
        self._hpa = kubernetes.client.AutoscalingV2Api(api_client)
        self._custom = kubernetes.client.CustomObjectsApi(api_client)
        self._timeout = (settings.connect_timeout, settings.read_timeout)

    async def scale(self, namespace: str, kind: str, name: str, replicas: int, resource_version: str) -> int:
        """Set the target's replicas, if it is still at `resource_version`; returns the replicas it
        now asks for."""
        body: dict[str, Any] = {"spec": {"replicas": replicas}}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}

        def call() -> Any:
            patch = (
                self._apps.patch_namespaced_stateful_set_scale
                if kind == "StatefulSet"
                else self._apps.patch_namespaced_deployment_scale
            )
            return patch(name, namespace, body, _content_type=_MERGE_PATCH, _request_timeout=self._timeout)

        try:
            result = await asyncio.to_thread(call)
        except Exception as err:
            status = getattr(err, "status", None)
            what = f"scale {kind} {namespace}/{name} to {replicas}"
            if status == 403:
                raise ScaleForbidden(f"{what}: forbidden: {getattr(err, 'body', err)}"[:500]) from err
            if status == 409:
                raise ScaleConflict(f"{what}: the target changed since it was read") from err
            raise translate_error(err, what) from err
        return int(getattr(getattr(result, "spec", None), "replicas", replicas) or 0)

    async def autoscalers(
        self, namespace: str, kind: str, name: str, *, max_age: float | None = None
    ) -> tuple[Autoscaler, ...]:
        """The HPAs and KEDA ScaledObjects in `namespace` that scale this target (KEDA absent: none).

        One listing per namespace serves every workload in it for `ttl` seconds: a namespace of many
        Auto workloads costs two list calls per `ttl`, not two per evaluation. `max_age` (0: list
        now) bounds how old a listing may be, for the check made right before an action."""
        now = self._clock()
        cached = self._listed.get(namespace)
        if cached is None or now - cached[0] >= (self.ttl if max_age is None else max_age):
            try:
                cached = (now, await asyncio.to_thread(self._list, namespace))
            except Exception as err:
                raise translate_error(err, f"list the autoscalers in {namespace}") from err
            self._listed[namespace] = cached
        return tuple(a for a, ref in cached[1] if _refs(ref, kind, name))

    def _list(self, namespace: str) -> list[tuple[Autoscaler, Mapping[str, Any] | None]]:
        """Every HPA and ScaledObject in the namespace, with the target it scales."""
        hpas = self._hpa.list_namespaced_horizontal_pod_autoscaler(namespace, _request_timeout=self._timeout)
        found: list[tuple[Autoscaler, Mapping[str, Any] | None]] = [
            (
                Autoscaler("HorizontalPodAutoscaler", h.metadata.name),
                {"kind": h.spec.scale_target_ref.kind, "name": h.spec.scale_target_ref.name},
            )
            for h in hpas.items
        ]
        try:
            keda = self._custom.list_namespaced_custom_object(
                *KEDA[:2], namespace, KEDA[2], _request_timeout=self._timeout
            )
        except kubernetes.client.ApiException as err:
            if err.status != 404:
                raise
            keda = {}  # KEDA is not installed: there is no ScaledObject
        found += [
            (
                Autoscaler("ScaledObject", str(o["metadata"]["name"])),
                (o.get("spec") or {}).get("scaleTargetRef"),
            )
            for o in keda.get("items", [])
        ]
        return found
