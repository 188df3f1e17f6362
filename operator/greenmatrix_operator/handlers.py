"""Kopf registrations, and nothing else: indexes and events feed memory, events feed the work queue.

Only `@kopf.index` and `@kopf.on.event` handlers are used: neither stores progress or a diff
base on the objects, adds finalizers or writes `status.kopf`, so Kopf never writes to users'
objects at all. Every handler is async: the reconciler's queue lives on the event loop.

Nodes and policies (tens to hundreds) are Kopf indexes; WorkloadProfiles (thousands) are kept by the
reconciler's `ProfileStore` from their events, because a Kopf index over thousands of objects makes
a restart quadratic (see `control.profiles`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from greenmatrix import GROUP, VERSION, NodeHardware
from greenmatrix_operator.adapters import kube
from greenmatrix_operator.control.reconciler import Indexes, Reconciler
from greenmatrix_operator.records import OPTIMIZATION_POLICY, WORKLOAD_PROFILE, ObjectRecord

NODES = "node_hardware"
POLICIES = "optimization_policies"


def register(registry: kopf.OperatorRegistry, reconciler: Reconciler) -> None:
    """Register the operator's handlers on `registry`, feeding `reconciler`."""

    profiles = reconciler.profiles

    def bind(kwargs: Mapping[str, Any]) -> None:
        reconciler.bind(
            Indexes(
                nodes=kwargs[NODES],
                workloads=profiles.records,
                workload_names=profiles.names,
                policies=kwargs[POLICIES],
            )
        )

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # The same credentials as the status writer: in-cluster, else the kubeconfig context.
        return kopf.login_via_client(**kwargs)

    @kopf.index("nodes", id=NODES, registry=registry)
    async def index_node(name: str, labels: Any, spec: Any, status: Any, **_: Any) -> dict[str, NodeHardware]:
        return {name: kube.node_hardware(name, labels, spec, status)}

    @kopf.index(GROUP, VERSION, "optimizationpolicies", id=POLICIES, registry=registry)
    async def index_policy(body: Any, namespace: str, **_: Any) -> dict[str, ObjectRecord]:
        return {namespace: ObjectRecord.from_body(OPTIMIZATION_POLICY, body)}

    @kopf.on.event("nodes", registry=registry)
    async def node_event(name: str, type: str | None, **kwargs: Any) -> None:
        bind(kwargs)
        store = kwargs[NODES].get(name) if type != "DELETED" else None
        reconciler.node_changed(name, next(iter(store), None) if store else None)

    @kopf.on.event(GROUP, VERSION, "workloadprofiles", registry=registry)
    async def workload_event(body: Any, namespace: str, name: str, type: str | None, **kwargs: Any) -> None:
        bind(kwargs)
        deleted = type == "DELETED"
        record = ObjectRecord.from_body(WORKLOAD_PROFILE, body, pack=True)
        if deleted:
            profiles.remove(namespace, name)
        else:
            profiles.put(record)
        reconciler.workload_changed(record, deleted=deleted)

    @kopf.on.event(GROUP, VERSION, "optimizationpolicies", registry=registry)
    async def policy_event(body: Any, namespace: str, name: str, type: str | None, **kwargs: Any) -> None:
        bind(kwargs)
        if type == "DELETED":
            reconciler.policy_changed(namespace, name, None)
        else:
            record = ObjectRecord.from_body(OPTIMIZATION_POLICY, body)
            reconciler.policy_changed(namespace, name, record.generation, record)
