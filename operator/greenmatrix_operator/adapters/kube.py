"""The Kubernetes adapter: Node objects read as the engine's NodeHardware, status patches and Events
written, API faults translated at the boundary.

Status patches and Events go over aiohttp on the event loop (`apiserver`); the rarer reads and
writes of the other adapters go through the official client in worker threads (the reconciler
reads its objects from memory kept from the watches). Failures become `Gone` (the object no longer
exists: drop it), `Rejected` (the API refuses this write: log it, retrying the same write cannot
help) or `Unavailable` (anything else: retry with backoff).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kubernetes

from greenmatrix import GROUP, VERSION, NodeHardware
from greenmatrix_operator.adapters.apiserver import ApiServer
from greenmatrix_operator.records import PAUSED_ANNOTATION, PLURALS, ObjectRecord
from greenmatrix_operator.settings import ApiSettings

logger = logging.getLogger(__name__)

COMPONENT = "greenmatrix-operator"
_MERGE_PATCH = "application/merge-patch+json"
_JSON = "application/json"


def node_hardware(
    name: str, labels: Mapping[str, str], spec: Mapping[str, Any], status: Mapping[str, Any]
) -> NodeHardware:
    """A Node object's parts as the engine's NodeHardware."""
    conditions = status.get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    return NodeHardware.from_node(
        name,
        dict(labels),
        dict(status.get("allocatable") or {}),
        ready=ready,
        unschedulable=bool(spec.get("unschedulable", False)),
    )


class KubeError(Exception):
    """An API call that did not do what was asked."""


class Gone(KubeError):
    """The object was deleted (404)."""


class Rejected(KubeError):
    """The API server refused the request (400, 403, 422): retrying it unchanged won't help."""


class Unavailable(KubeError):
    """A transient failure (timeouts, 429, 5xx, connection errors): retry later."""


def now_rfc3339() -> str:
    """The current time the way metav1.Time serialises it (seconds, UTC, 'Z')."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def translate_error(err: Exception, what: str) -> KubeError:
    status = getattr(err, "status", None)
    body = getattr(err, "body", None) or str(err)
    message = f"{what}: {status or type(err).__name__}: {str(body)[:500]}"
    if status == 404:
        return Gone(message)
    if status in (400, 403, 422):
        return Rejected(message)
    return Unavailable(message)


def read_raw(response: Any) -> bytes:
    """The body of an answer asked for with `_preload_content=False`, and its connection back to the
    pool: unreleased, every request would open a new TLS connection."""
    try:
        return bytes(response.data or b"")
    finally:
        response.release_conn()


class KubeClient:
    """Writes the operator makes; one instance per operator process."""

    def __init__(self, api_client: kubernetes.client.ApiClient, settings: ApiSettings) -> None:
        self.api_client = api_client
        self.server = ApiServer(api_client.configuration, settings)

    @classmethod
    def from_environment(cls, settings: ApiSettings) -> KubeClient:
        """In-cluster credentials when running in a pod, else the current kubeconfig context."""
        try:
            kubernetes.config.load_incluster_config()
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config()
        return cls(kubernetes.client.ApiClient(), settings)

    async def patch_status(self, record: ObjectRecord, patch: Mapping[str, Any]) -> None:
        """Merge-patch the status subresource."""
        plural = PLURALS[record.kind]
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{record.namespace}/{plural}/{record.name}/status"
        try:
            # No preconditions: the status is ours alone, and a write computed from a stale snapshot
            # is corrected by the reconcile the newer object's watch event triggers.
            await self.server.send("PATCH", path, {"status": dict(patch)}, _MERGE_PATCH)
        except Exception as err:
            raise translate_error(err, f"patch status of {record.key}") from err

    async def post_event(self, record: ObjectRecord, type_: str, reason: str, message: str) -> None:
        """Record a core/v1 Event on the object; failures are logged, never raised (best effort)."""
        now = now_rfc3339()
        body = {
            "metadata": {"generateName": f"{record.name}.", "namespace": record.namespace},
            "involvedObject": {
                "apiVersion": record.api_version,
                "kind": record.kind,
                "namespace": record.namespace,
                "name": record.name,
                "uid": record.uid,
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": COMPONENT,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self.server.send("POST", f"/api/v1/namespaces/{record.namespace}/events", body, _JSON)
        except Exception as err:
            logger.warning(
                "could not post event %s on %s: %s", reason, record.key, translate_error(err, "event")
            )

    async def aclose(self) -> None:
        await self.server.aclose()


GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"


@dataclass(frozen=True)
class Target:
    """What the live loop reads of a WorkloadProfile's target: its replicas and where its pods run."""

    kind: str
    name: str
    replicas: int
    """The replicas its spec asks for (what its scale subresource reports)."""
    ready_replicas: int
    gpus_per_replica: int
    """GPUs a pod requests (the sum over its containers)."""
    gpu_product: str | None
    """The GPU product its pods are pinned to (None: not pinned)."""
    generation: int = 0
    """Its metadata.generation: moves only when its spec does (a scale included), not with its status."""
    resource_version: str = ""
    paused: bool = False
    """Whether it carries the annotation `greenmatrix.io/paused: "true"`."""


def _gpus_of(template: Mapping[str, Any]) -> int:
    total = 0
    for container in (template.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        amount = (resources.get("limits") or {}).get(GPU_RESOURCE) or (resources.get("requests") or {}).get(
            GPU_RESOURCE
        )
        with contextlib.suppress(TypeError, ValueError):
            total += int(str(amount)) if amount is not None else 0
    return total


def _pinned_product(pod_spec: Mapping[str, Any]) -> str | None:
    """The GPU product a pod template pins: a nodeSelector, or a required node affinity of one value."""
    chosen = (pod_spec.get("nodeSelector") or {}).get(GPU_PRODUCT_LABEL)
    if chosen:
        return str(chosen)
    required = ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in required.get("nodeSelectorTerms") or []:
        for expression in term.get("matchExpressions") or []:
            values = expression.get("values") or []
            if (
                expression.get("key") == GPU_PRODUCT_LABEL
                and expression.get("operator") == "In"
                and len(values) == 1
            ):
                return str(values[0])
    return None


def target_of(obj: Mapping[str, Any]) -> Target:
    """A Deployment or StatefulSet (as a dict) read as a Target; the GPU product is the one its pod
    template pins (None: the live loop asks DCGM which GPUs its pods run on)."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    metadata = obj.get("metadata") or {}
    template = spec.get("template") or {}
    return Target(
        kind=str(obj.get("kind", "")),
        name=str(metadata.get("name", "")),
        replicas=int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1),
        ready_replicas=int(status.get("readyReplicas") or 0),
        gpus_per_replica=_gpus_of(template),
        gpu_product=_pinned_product(template.get("spec") or {}),
        generation=int(metadata.get("generation") or 0),
        resource_version=str(metadata.get("resourceVersion") or ""),
        paused=is_paused(metadata),
    )


def is_paused(metadata: Mapping[str, Any]) -> bool:
    """Whether an object's metadata carries `greenmatrix.io/paused: "true"` (as KEDA's pause annotation)."""
    return str((metadata.get("annotations") or {}).get(PAUSED_ANNOTATION, "")).lower() == "true"


class TargetReader:
    """Reads targets (Deployments, StatefulSets): get only, never their pods (whose specs may hold
    secrets in their environment)."""

    def __init__(self, api_client: kubernetes.client.ApiClient, settings: ApiSettings) -> None:
        self._apps = kubernetes.client.AppsV1Api(api_client)
        self._timeout = (settings.connect_timeout, settings.read_timeout)

    async def read(self, namespace: str, kind: str, name: str) -> Mapping[str, Any]:
        """The target as a dict; `Gone` when it does not exist."""

        def call() -> Mapping[str, Any]:
            reader = (
                self._apps.read_namespaced_stateful_set
                if kind == "StatefulSet"
                else self._apps.read_namespaced_deployment
            )
            obj = reader(name, namespace, _request_timeout=self._timeout)
            body = self._apps.api_client.sanitize_for_serialization(obj)
            body.setdefault("kind", kind)
            return body

        try:
            return await asyncio.to_thread(call)
        except Exception as err:
            raise translate_error(err, f"read {kind} {namespace}/{name}") from err
