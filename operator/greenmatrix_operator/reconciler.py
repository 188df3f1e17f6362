"""The loop: triggers put object keys on one debounced queue; workers bring each status up to date.

Inputs come only from Kopf's in-memory indexes (nodes, WorkloadProfiles, OptimizationPolicies);
`evaluation` turns them into the desired status (planning runs in a worker thread, so the event
loop keeps serving watches while a plan is made); the one write path (`_write`) patches the
status subresource only when it differs from what is there and posts an Event when the Ready
state or the recommended hardware changes. API faults are retried with backoff; one bad object
never stops the others.

Plans are memoised on exactly what they depend on (the spec, the GPU and CPU kinds of the
inventory, the policy's spec, the region): a node change that leaves a profile's options as they
were costs a dictionary look-up, and the same inputs give the same (byte-identical) status.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from greenmatrix.api.optimizationpolicy import Constraints, OptimizationPolicySpec
from greenmatrix.api.workloadprofile import HardwareSpec, Inventory, WorkloadProfileSpec
from greenmatrix.inventory import NodeHardware, summarize
from greenmatrix.plan.result import Plan
from greenmatrix.predict.predictors import Predictors
from greenmatrix_operator.evaluation import (
    SPEC_DOUBTFUL,
    PolicyView,
    applied_policy,
    cluster_region,
    evaluate_policy,
    evaluate_workload,
    parse_policies,
    planner_for,
    unknown_products,
)
from greenmatrix_operator.kube import Gone, KubeError, Rejected
from greenmatrix_operator.records import OPTIMIZATION_POLICY, WORKLOAD_PROFILE, ObjectKey, ObjectRecord
from greenmatrix_operator.status import (
    INVALID_SPEC,
    READY,
    condition,
    merge_conditions,
    now_rfc3339,
    status_patch,
)
from greenmatrix_operator.workqueue import WorkQueue

logger = logging.getLogger(__name__)

# Retry delays after consecutive failures of one key (seconds); the last one repeats.
RETRY_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
# Plans kept for re-use, without their full option tables (a few kB each).
PLAN_CACHE_SIZE = 512
RECOMMENDATION_CHANGED = "RecommendationChanged"

# Kopf's indexes are mappings of key -> store (an iterable of values); plain dicts of lists work too.
Index = Mapping[Any, Iterable[Any]]


class StatusWriter(Protocol):
    async def patch_status(self, record: ObjectRecord, patch: Mapping[str, Any]) -> str: ...
    async def post_event(self, record: ObjectRecord, type_: str, reason: str, message: str) -> None: ...


@dataclass(frozen=True)
class Indexes:
    """The live in-memory views the reconciler reads (Kopf keeps them current from the watches)."""

    nodes: Index  # node name -> NodeHardware
    workloads: Index  # (namespace, name) -> ObjectRecord
    workload_names: Index  # namespace -> WorkloadProfile name
    policies: Index  # namespace -> ObjectRecord


@dataclass(frozen=True)
class _Written:
    """The last status this process wrote for a key, and the resourceVersion it replaced."""

    uid: str
    replaced_version: str
    status: Mapping[str, Any]


def _first(store: Iterable[Any] | None) -> Any:
    return next(iter(store), None) if store is not None else None


class Reconciler:
    """Owns the work queue and the single status-writing code path."""

    def __init__(
        self,
        kube: StatusWriter,
        *,
        debounce: float = 0.2,
        workers: int = 2,
        clock: Callable[[], str] = now_rfc3339,
        predictors: Predictors | None = None,
    ) -> None:
        self.kube = kube
        self.queue: WorkQueue[ObjectKey] = WorkQueue(debounce)
        self.workers = workers
        self.clock = clock
        self.stats: Counter[str] = Counter()
        self.indexes: Indexes | None = None
        self._bound = asyncio.Event()
        self._written: dict[ObjectKey, _Written] = {}
        self._failures: Counter[ObjectKey] = Counter()
        self._nodes_seen: dict[str, NodeHardware] = {}
        self._labels_seen: dict[ObjectKey, Mapping[str, str]] = {}
        self._nodes_version = 0
        self._inventory_cache: dict[tuple[int, str, str], tuple[Inventory, str | None]] = {}
        # Loaded once per process; the operator's startup does it before the workers start.
        self._planner = planner_for(predictors or Predictors.load())
        self._plans: OrderedDict[tuple[str, str, str, str], Plan] = OrderedDict()
        self._plans_lock = threading.Lock()
        self.plan_seconds = 0.0
        self.recommended: dict[ObjectKey, str | None] = {}
        """The recommended GPU type per WorkloadProfile (None: none), for the metrics."""

    # --- inputs ------------------------------------------------------------------------------

    def bind(self, indexes: Indexes) -> None:
        """Attach the live indexes (done by the first handler call; they stay the same objects)."""
        if self.indexes is None:
            self.indexes = indexes
            self._bound.set()

    def _nodes(self) -> list[NodeHardware]:
        assert self.indexes is not None
        return [hw for store in self.indexes.nodes.values() for hw in store]

    def _workload(self, namespace: str, name: str) -> ObjectRecord | None:
        assert self.indexes is not None
        return _first(self.indexes.workloads.get((namespace, name)))

    def _workload_names(self, namespace: str) -> list[str]:
        assert self.indexes is not None
        return sorted(set(self.indexes.workload_names.get(namespace) or ()))

    def _hardware(
        self,
        version: int,
        nodes: Sequence[NodeHardware],
        hardware: HardwareSpec | None,
        constraints: Constraints | None,
    ) -> tuple[Inventory, str | None]:
        """`inventory.summarize` and the cluster region, memoised per node-set version.

        Most profiles share their restrictions. `version` is the one `nodes` were read at (in the
        event loop), so a worker thread can never file an old node set under a newer version.
        """
        key = (
            version,
            hardware.model_dump_json() if hardware else "",
            constraints.model_dump_json() if constraints else "",
        )
        cached = self._inventory_cache.get(key)
        if cached is None:
            if len(self._inventory_cache) > 1024:
                self._inventory_cache.clear()
            cached = self._inventory_cache[key] = (
                summarize(nodes, hardware, constraints),
                cluster_region(nodes, hardware, constraints),
            )
        return cached

    def _plan(
        self,
        spec: WorkloadProfileSpec,
        inventory: Inventory,
        policy: OptimizationPolicySpec | None,
        region: str | None,
    ) -> Plan:
        """The planner, memoised on everything a plan reads (the inventory's node totals are not)."""
        key = (
            spec.model_dump_json(),
            inventory.model_dump_json(include={"gpus", "cpus"}),
            policy.model_dump_json() if policy else "",
            region or "",
        )
        with self._plans_lock:
            cached = self._plans.get(key)
            if cached is not None:
                self._plans.move_to_end(key)
                self.stats["plan_cache_hits"] += 1
                return cached
        started = time.perf_counter()
        # The status needs the recommendation, alternatives, advice and error, not every option.
        result = replace(self._planner(spec, inventory, policy, region), options=(), evaluated=())
        elapsed = time.perf_counter() - started
        with self._plans_lock:
            self._plans[key] = result
            if len(self._plans) > PLAN_CACHE_SIZE:
                self._plans.popitem(last=False)
            self.stats["plans"] += 1
            self.plan_seconds += elapsed
        logger.debug("planned in %.1f ms", elapsed * 1000)
        return result

    def _policy_records(self, namespace: str) -> list[ObjectRecord]:
        assert self.indexes is not None
        return list(self.indexes.policies.get(namespace) or ())

    def _policies(self, namespace: str) -> list[PolicyView]:
        return parse_policies((r.name, r.spec) for r in self._policy_records(namespace))

    # --- triggers (called from Kopf handlers) -------------------------------------------------

    def node_changed(self, name: str, hardware: NodeHardware | None) -> None:
        """A node appeared, changed or vanished: every WorkloadProfile's inventory may differ."""
        if hardware is not None and self._nodes_seen.get(name) == hardware:
            return  # heartbeats and unrelated label churn: nothing GreenMatrix reads changed
        if hardware is None:
            self._nodes_seen.pop(name, None)
        else:
            self._nodes_seen[name] = hardware
        self._nodes_version += 1
        self._inventory_cache.clear()
        self.stats["node_changes"] += 1
        assert self.indexes is not None
        for namespace, name_ in list(self.indexes.workloads):
            self.queue.add(ObjectKey(WORKLOAD_PROFILE, namespace, name_))
        # Policies too: allowedGpus may name a product the catalog lacks, which is valid only while
        # a node carries it.
        for namespace in list(self.indexes.policies):
            self._add_policies(namespace)

    def workload_changed(self, record: ObjectRecord, deleted: bool = False) -> None:
        """A WorkloadProfile event: reconcile it, and its namespace's policies when its labels moved."""
        key = record.key
        labels = None if deleted else dict(record.labels)
        if deleted:
            self._forget(key)
        else:
            written = self._written.get(key)
            echo = written is not None and written.uid == record.uid and written.status == record.status
            if (
                echo
                and self._labels_seen.get(key) == labels
                and record.status.get("observedGeneration") == record.generation
            ):
                return  # the watch echoing our own status write
            self.queue.add(key)
        if self._labels_seen.get(key) != labels:
            if labels is None:
                self._labels_seen.pop(key, None)
            else:
                self._labels_seen[key] = labels
            self._add_policies(record.namespace)

    def policy_changed(self, namespace: str, name: str) -> None:
        """A policy event: it, its siblings (who wins may change) and the namespace's profiles."""
        self.queue.add(ObjectKey(OPTIMIZATION_POLICY, namespace, name))
        self._add_policies(namespace)
        for wp in self._workload_names(namespace):
            self.queue.add(ObjectKey(WORKLOAD_PROFILE, namespace, wp))

    def _add_policies(self, namespace: str) -> None:
        for record in self._policy_records(namespace):
            self.queue.add(record.key)

    # --- the loop ----------------------------------------------------------------------------

    def start(self) -> list[asyncio.Task[None]]:
        """Start the workers (they idle until the indexes are bound); cancel the tasks to stop."""
        logger.info("reconciling with %d workers (debounce %.2fs)", self.workers, self.queue.debounce)
        return [
            asyncio.create_task(self._worker(i), name=f"greenmatrix worker {i}") for i in range(self.workers)
        ]

    async def _worker(self, number: int) -> None:
        await self._bound.wait()
        while True:
            key = await self.queue.get()
            try:
                await self.reconcile(key)
            except Gone:
                logger.info("%s is gone; forgetting it", key)
                self._forget(key)
            except Exception as err:
                self._retry(key, err)
            else:
                self._failures.pop(key, None)
            finally:
                self.queue.done(key)

    def _retry(self, key: ObjectKey, err: Exception) -> None:
        failures = self._failures[key] = self._failures[key] + 1
        delay = RETRY_DELAYS[min(failures, len(RETRY_DELAYS)) - 1]
        if isinstance(err, Rejected):
            delay = RETRY_DELAYS[-1]  # the same write will be refused again; come back rarely
        self.stats["errors"] += 1
        if isinstance(err, KubeError):
            logger.warning("%s: %s; retrying in %.0fs", key, err, delay)
        else:
            logger.exception("%s: reconcile failed; retrying in %.0fs", key, delay)
        self.queue.add(key, delay)

    def _forget(self, key: ObjectKey) -> None:
        self._written.pop(key, None)
        self._failures.pop(key, None)
        self.recommended.pop(key, None)

    async def reconcile(self, key: ObjectKey) -> None:
        """Bring one object's status up to date with the current inputs."""
        self.stats[f"reconciles_{key.kind}"] += 1
        if key.kind == WORKLOAD_PROFILE:
            await self._reconcile_workload(key)
        else:
            await self._reconcile_policy(key)

    async def _reconcile_workload(self, key: ObjectKey) -> None:
        record = self._workload(key.namespace, key.name)
        if record is None:
            self._forget(key)
            return
        nodes, version = self._nodes(), self._nodes_version
        policy = applied_policy(self._policies(key.namespace), record.labels)

        def summarizer(
            nodes: Sequence[NodeHardware], hardware: HardwareSpec | None, constraints: Constraints | None
        ) -> Inventory:
            return self._hardware(version, nodes, hardware, constraints)[0]

        def region_of(
            nodes: Sequence[NodeHardware], hardware: HardwareSpec | None, constraints: Constraints | None
        ) -> str | None:
            return self._hardware(version, nodes, hardware, constraints)[1]

        evaluation = await asyncio.to_thread(
            evaluate_workload,
            record.spec,
            nodes,
            policy,
            summarizer,
            planner=self._plan,
            region_of=region_of,
        )
        self.recommended[key] = evaluation.recommended_gpu
        desired: dict[str, Any] = {"observedGeneration": record.generation}
        current = self._known_status(record)
        desired["conditions"] = merge_conditions(
            current.get("conditions"), evaluation.conditions, record.generation, self.clock()
        )
        if evaluation.inventory is not None:
            desired["inventory"] = evaluation.inventory.to_wire()
        desired.update(evaluation.status_fields())
        if policy is not None:
            desired["appliedPolicy"] = policy.name
        await self._write(record, desired)

    async def _reconcile_policy(self, key: ObjectKey) -> None:
        record = next((r for r in self._policy_records(key.namespace) if r.name == key.name), None)
        if record is None:
            self._forget(key)
            return
        workloads = []
        for name in self._workload_names(key.namespace):
            wp = self._workload(key.namespace, name)
            if wp is not None:
                workloads.append((name, wp.labels))
        evaluation = evaluate_policy(
            record.name,
            record.spec,
            workloads,
            self._policies(key.namespace),
            unknown_products(self._nodes()),
        )
        current = self._known_status(record)
        desired: dict[str, Any] = {
            "observedGeneration": record.generation,
            "conditions": merge_conditions(
                current.get("conditions"), evaluation.conditions, record.generation, self.clock()
            ),
            "selectedWorkloads": list(evaluation.selected),
            "selectedCount": len(evaluation.selected),
            "appliedWorkloads": list(evaluation.applied),
        }
        await self._write(record, desired)

    def _known_status(self, record: ObjectRecord) -> Mapping[str, Any]:
        """The freshest status we know: our own last write when the watch has not echoed it yet."""
        written = self._written.get(record.key)
        if written and written.uid == record.uid and written.replaced_version == record.resource_version:
            return written.status
        return record.status

    async def _write(self, record: ObjectRecord, desired: Mapping[str, Any]) -> None:
        """The one place statuses are written: only the difference, and an Event when Ready moves."""
        current = self._known_status(record)
        patch = status_patch(current, desired)
        if patch is None:
            return
        await self.kube.patch_status(record, patch)
        self._written[record.key] = _Written(record.uid, record.resource_version, dict(desired))
        self.stats[f"status_writes_{record.kind}"] += 1
        before, after = condition(current, READY), condition(desired, READY)
        if after is not None and (
            before is None
            or (before.get("status"), before.get("reason")) != (after["status"], after["reason"])
        ):
            type_ = "Normal" if after["status"] == "True" else "Warning"
            self.stats[f"events_{type_}"] += 1
            await self.kube.post_event(record, type_, after["reason"], after.get("message", ""))
        elif (moved := _moved(current.get("recommendation"), desired.get("recommendation"))) is not None:
            self.stats["events_Normal"] += 1
            await self.kube.post_event(record, "Normal", RECOMMENDATION_CHANGED, moved)
        doubt = condition(desired, INVALID_SPEC)
        if doubt is not None and doubt["reason"] == SPEC_DOUBTFUL:
            seen = condition(current, INVALID_SPEC) or {}
            # Once per doubt: the same doubt on every resync would bury the other Events.
            if (seen.get("reason"), seen.get("message")) != (SPEC_DOUBTFUL, doubt.get("message")):
                self.stats["events_Warning"] += 1
                await self.kube.post_event(record, "Warning", SPEC_DOUBTFUL, doubt.get("message", ""))


def _headline(recommendation: Mapping[str, Any]) -> str:
    replicas = recommendation.get("replicas", 1)
    return (
        f"{recommendation.get('gpu')} x{recommendation.get('gpusPerReplica')},"
        f" {replicas} replica{'s' * (replicas != 1)}"
    )


def _moved(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> str | None:
    """The Event message when the recommended hardware or replica count changed, else None."""
    if not before or not after:
        return None  # appearing or vanishing recommendations move Ready, which has its own Event
    if _headline(before) == _headline(after):
        return None
    return f"{_headline(before)} -> {_headline(after)}: {after.get('explanation', '')}"
