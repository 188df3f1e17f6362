"""The loop: triggers put object keys on one debounced queue; workers bring each status up to date.

Inputs come only from memory kept from the watches (nodes, WorkloadProfiles, OptimizationPolicies);
`recommend` and `selection` turn them into the desired status (planning runs in a worker thread, so
the event loop keeps serving watches while a plan is made, through the caches in `memo`); `writer`
writes it. API faults are retried with backoff; one bad object never stops the others.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from greenmatrix import NodeHardware, Predictors, applied_policy, unknown_products
from greenmatrix_operator.adapters import kube
from greenmatrix_operator.control import recommend, selection
from greenmatrix_operator.control.actuator import Actuator
from greenmatrix_operator.control.live import LiveLoop, LiveView, Reading, parse_spec, sample_of
from greenmatrix_operator.control.memo import InventoryMemo, PlanMemo
from greenmatrix_operator.control.peering import Activity
from greenmatrix_operator.control.profiles import ProfileStore
from greenmatrix_operator.control.workqueue import WorkQueue
from greenmatrix_operator.control.writer import StatusApi, StatusWriter
from greenmatrix_operator.metrics import OperatorMetrics
from greenmatrix_operator.records import (
    OPTIMIZATION_POLICY,
    WORKLOAD_PROFILE,
    ObjectKey,
    ObjectRecord,
    PolicyView,
    parse_policies,
)
from greenmatrix_operator.settings import OperatorSettings
from greenmatrix_operator.status.evaluation import WorkloadEvaluation, status_of

logger = logging.getLogger(__name__)

# Seconds a policy's reconcile is put back while the start's listing of profiles is not in.
LISTING_WAIT = 0.5

# Kopf's indexes are mappings of key -> store (an iterable of values); plain dicts of lists work too.
Index = Mapping[Any, Iterable[Any]]


@dataclass(frozen=True)
class Indexes:
    """The live in-memory views the reconciler reads (kept current from the watches: nodes and policies by
    Kopf's indexes, profiles by the `ProfileStore`)."""

    nodes: Index  # node name -> NodeHardware
    workloads: Index  # (namespace, name) -> ObjectRecord
    workload_names: Index  # namespace -> WorkloadProfile name
    policies: Index  # namespace -> ObjectRecord


def _first(store: Iterable[Any] | None) -> Any:
    return next(iter(store), None) if store is not None else None


class Reconciler:
    """Owns the work queue, its workers and the triggers that feed it."""

    def __init__(
        self,
        api: StatusApi,
        settings: OperatorSettings | None = None,
        *,
        clock: Callable[[], str] = kube.now_rfc3339,
        predictors: Predictors | None = None,
        metrics: OperatorMetrics | None = None,
        live: LiveLoop | None = None,
        actuator: Actuator | None = None,
        profiles: ProfileStore | None = None,
    ) -> None:
        self.settings = settings or OperatorSettings()
        self.profiles = profiles or ProfileStore()
        """The WorkloadProfiles, from their events (the handlers fill it; `indexes.workloads` is it)."""
        self.queue: WorkQueue[ObjectKey] = WorkQueue(self.settings.queue.debounce)
        self.clock = clock
        self.metrics = metrics or OperatorMetrics()
        self.writer = StatusWriter(api, self.metrics)
        self.indexes: Indexes | None = None
        self._bound = asyncio.Event()
        self._failures: Counter[ObjectKey] = Counter()
        self._nodes_seen: dict[str, NodeHardware] = {}
        self._labels_seen: dict[ObjectKey, Mapping[str, str]] = {}
        self._advice_deferred: set[ObjectKey] = set()
        """Profiles whose status was written without the advice, which their next reconcile adds."""
        self._paused: set[ObjectKey] = set()
        """Profiles seen with the pause annotation: an event that only flips it is no echo."""
        self._policy_generations: dict[ObjectKey, int] = {}
        """The generation each policy was last seen at: a status-only change selects nothing anew."""
        self._nodes_version = 0
        self._inventories = InventoryMemo(self.settings.caches.inventories)
        # Loaded once per process; the operator's startup does it before the workers start.
        planner = recommend.planner_for(predictors or Predictors.load())
        self._plans = PlanMemo(planner, self.settings.caches.plans, self.metrics)
        self._live_plans = PlanMemo(planner, self.settings.caches.live_plans, self.metrics, keep_options=True)
        self.live = live
        """The live loop over Prometheus (None: recommendations from the specs only)."""
        self.actuator = actuator
        """Guarded auto-apply (None: recommendations only; it acts only with the live loop)."""
        self.activity: Activity | None = None
        """With peering: whether this replica is the one that works (None: standalone, always)."""
        self.desired: dict[ObjectKey, int] = {}
        """The guarded desired replicas per live WorkloadProfile, for /metrics."""
        self.recommended: dict[ObjectKey, str | None] = {}
        """The recommended GPU type per WorkloadProfile (None: none), for the metrics."""
        self.metrics.queue_depth.set_function(lambda: {None: self.queue.ready})
        self.metrics.queue_in_progress.set_function(lambda: {None: self.queue.processing})
        self.metrics.workloads_without_metrics.set_function(
            lambda: {None: self.live.blind() if self.live is not None else 0}
        )
        self.metrics.desired_replicas.set_function(
            lambda: {(key.namespace, key.name): n for key, n in self.desired.items()}
        )
        self.figures: dict[ObjectKey, dict[str, float]] = {}
        """Per WorkloadProfile: current replicas and the recommended option's $/h, watts and gCO2/h."""
        for name in ("current_replicas", "usd_per_hour", "watts", "grams_co2_per_hour"):
            getattr(self.metrics, name).set_function(
                lambda name=name: {
                    (key.namespace, key.name): f[name] for key, f in self.figures.items() if name in f
                }
            )
        self.metrics.recommendations.set_function(
            lambda: Counter(gpu or "none" for gpu in self.recommended.values())
        )

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
        self._inventories.clear()
        self.metrics.node_changes.inc()
        assert self.indexes is not None
        for namespace, name_ in list(self.indexes.workloads):
            self.queue.add(ObjectKey(WORKLOAD_PROFILE, namespace, name_), bulk=True)
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
            self._paused.discard(key)
        else:
            if (
                self.writer.wrote(record)
                and self._labels_seen.get(key) == labels
                and record.observed_generation == record.generation
                and (key in self._paused) == record.paused
            ):
                return  # the watch echoing our own status write
            if record.paused:
                self._paused.add(key)
            else:
                self._paused.discard(key)
            # First seen with a status of its current spec: the start's resync, which a new or edited
            # profile must not wait behind.
            resync = key not in self._labels_seen and record.observed_generation == record.generation
            self.queue.add(key, bulk=resync)
        if self._labels_seen.get(key) != labels:
            if labels is None:
                self._labels_seen.pop(key, None)
            else:
                self._labels_seen[key] = labels
            # Counted again once the burst this profile may be part of is in: a recount per profile
            # rewrote the policy's status with every create in its namespace.
            self._add_policies(record.namespace, self.settings.queue.policy_recount)

    def policy_changed(
        self, namespace: str, name: str, generation: int | None = None, record: ObjectRecord | None = None
    ) -> None:
        """A policy event: it, its siblings (who wins may change) and the namespace's profiles; only
        it when its spec did not move (its status written by someone else: profiles depend on specs
        only); nothing when it is the echo of our own status write (`record`: the policy as seen).
        `generation`: None when it was deleted."""
        key = ObjectKey(OPTIMIZATION_POLICY, namespace, name)
        seen = self._policy_generations.get(key)
        if generation is None:
            self._policy_generations.pop(key, None)
        else:
            self._policy_generations[key] = generation
        if generation is not None and seen == generation:
            if record is None or not self.writer.wrote(record):
                self.queue.add(key)
            return
        self.queue.add(key)
        self._add_policies(namespace)
        # First seen (the start, or a new policy): as bulk, behind new and edited profiles.
        for wp in self._workload_names(namespace):
            self.queue.add(ObjectKey(WORKLOAD_PROFILE, namespace, wp), bulk=seen is None)

    def _add_policies(self, namespace: str, delay: float | None = None) -> None:
        for record in self._policy_records(namespace):
            self.queue.add(record.key, delay)

    # --- the loop ----------------------------------------------------------------------------

    def start(self) -> list[asyncio.Task[None]]:
        """Start the workers (they idle until the indexes are bound); cancel the tasks to stop."""
        workers = self.settings.queue.workers
        logger.info("reconciling with %d workers (debounce %.2fs)", workers, self.queue.debounce)
        return [asyncio.create_task(self._worker(), name=f"greenmatrix worker {i}") for i in range(workers)]

    async def _worker(self) -> None:
        await self._bound.wait()
        while True:
            if self.activity is not None:
                # A standby replica keeps its queue and indexes warm, and does nothing with them.
                await self.activity.active.wait()
            key = await self.queue.get()
            if key.kind == OPTIMIZATION_POLICY and not self.profiles.listed.is_set():
                # A policy counts every profile, so it waits for the start's listing; a profile needs
                # only itself and the policies (Kopf's indexes hold them whole before any handler runs).
                self.queue.done(key)
                self.queue.add(key, LISTING_WAIT, bulk=True)
                continue
            try:
                await self.reconcile(key)
            except kube.Gone:
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
        delays = self.settings.retries.delays
        delay = delays[min(failures, len(delays)) - 1]
        if isinstance(err, kube.Rejected):
            delay = delays[-1]  # the same write will be refused again; come back rarely
        self.metrics.reconcile_errors.inc()
        if isinstance(err, kube.KubeError):
            logger.warning("%s: %s; retrying in %.0fs", key, err, delay)
        else:
            logger.exception("%s: reconcile failed; retrying in %.0fs", key, delay)
        self.queue.add(key, delay)

    def _forget(self, key: ObjectKey) -> None:
        self.writer.forget(key)
        self._advice_deferred.discard(key)
        if self.live is not None:
            self.live.forget(key)
        if self.actuator is not None:
            self.actuator.forget(key)
        self._failures.pop(key, None)
        self.recommended.pop(key, None)
        self.desired.pop(key, None)
        self.figures.pop(key, None)

    async def reconcile(self, key: ObjectKey) -> None:
        """Bring one object's status up to date with the current inputs."""
        self.metrics.reconciles.inc(key.kind)
        if key.kind == WORKLOAD_PROFILE:
            await self._reconcile_workload(key)
        else:
            await self._reconcile_policy(key)

    async def _reconcile_workload(self, key: ObjectKey) -> None:
        record = self._workload(key.namespace, key.name)
        if record is None:
            self._forget(key)
            return
        policy = applied_policy(self._policies(key.namespace), record.labels)
        reading, view, fresh = await self._live_read(key, record, policy)
        acting = self.actuator is not None and self.actuator.acting(policy)
        if reading is not None and self.live is not None and acting:
            self.live.acted_at(key, Actuator.last_action_at(self.writer.known_status(record)))
        advise = self._advise_now(key, record)
        evaluation, deferred = await asyncio.to_thread(
            self._evaluate, key, record, policy, reading, view, advise
        )
        if deferred:
            self._advice_deferred.add(key)
            self.queue.add(key, bulk=True)  # its advice, behind the new work
        self.recommended[key] = evaluation.recommended_gpu
        desired = evaluation.live_fields.get("scaling", {}).get("desiredReplicas")
        if desired is None:
            self.desired.pop(key, None)  # blind or warming up: nothing for another controller to act on
        else:
            self.desired[key] = desired
        self.figures[key] = figures_of(evaluation)
        if self.actuator is not None and self.live is not None and self.live.tracks(key):
            evaluation = await self._actuate(record, policy, reading, evaluation, fresh)
        await self._write(record, evaluation)
        if self.live is not None and (delay := self.live.delay(key)) is not None:
            self.queue.add(key, delay)

    def _advise_now(self, key: ObjectKey, record: ObjectRecord) -> bool:
        """Whether this reconcile must plan the advice too. A new or edited profile reconciled while
        other new work waits may get its recommendation first and its advice in a pass of its own,
        behind that work: the advice is about half a plan's cost (7 of 12.7 ms on the lab)."""
        if key in self._advice_deferred:
            self._advice_deferred.discard(key)
            return True
        return record.observed_generation == record.generation or not self.queue.waiting()

    async def _write(self, record: ObjectRecord, evaluation: WorkloadEvaluation) -> None:
        current = self.writer.known_status(record)
        desired = status_of(evaluation, record.generation, current.get("conditions"), self.clock())
        await self.writer.write(record, desired)

    async def _actuate(
        self,
        record: ObjectRecord,
        policy: PolicyView | None,
        reading: Reading | None,
        evaluation: WorkloadEvaluation,
        fresh: bool,
    ) -> WorkloadEvaluation:
        """Auto-apply's step; an action's intent is written to the status before the patch."""
        assert self.actuator is not None
        scaling = evaluation.live_fields.get("scaling") if reading is not None else None
        sample = None
        if reading is not None:
            capacity = (scaling or {}).get("capacityPerReplica") or {}
            sample = sample_of(reading.observed, reading.target.ready_replicas, capacity.get("p50"))
        step = await self.actuator.step(
            record,
            self.writer.known_status(record),
            policy,
            reading.target if reading is not None else None,
            scaling,
            reading is not None,
            sample,
            fresh=fresh,
        )
        evaluation = evaluation.with_actuation(step.view.conditions, step.view.fields)
        if step.intent is None:
            return evaluation
        # Recorded first: a crash between this write and the patch is settled from the target later.
        await self._write(record, evaluation)
        if self.settings.actuation.crash_after_intent:
            logger.warning("fault injection: SIGKILL after recording intent %s", step.intent.action.id)
            os.kill(os.getpid(), signal.SIGKILL)
        view = await self.actuator.apply(record, step.intent)
        return evaluation.with_actuation(view.conditions, view.fields)

    async def _live_read(
        self, key: ObjectKey, record: ObjectRecord, policy: PolicyView | None
    ) -> tuple[Reading | None, LiveView | None, bool]:
        """What the live loop read now (when due), or the view it holds from its last evaluation; and
        whether it evaluated now."""
        # Serving workloads only: a training job's demand is its run, not a request rate to forecast.
        tracked = record.spec.get("targetRef") and record.spec.get("task") == "inference"
        if self.live is None or not tracked or parse_spec(record.spec) is None:
            if self.live is not None:
                self.live.forget(key)
            if self.actuator is not None:
                self.actuator.forget(key)
            return None, None, False
        if not self.live.due(key, policy):
            return None, self.live.view(key), False
        self.metrics.live_evaluations.inc()
        read = await self.live.read(key, record.spec, policy)
        if isinstance(read, Reading):
            return read, None, True
        self.metrics.metrics_unavailable.inc(read.conditions[0].reason)
        return None, read, True

    def _evaluate(
        self,
        key: ObjectKey,
        record: ObjectRecord,
        policy: PolicyView | None,
        reading: Reading | None,
        view: LiveView | None,
        advise: bool = True,
    ) -> tuple[WorkloadEvaluation, bool]:
        """Plan (at the observed load once there is one), then the live engine call (in a thread); and
        whether the plan came without its advice (`advise=False` lets it, when it is not held)."""
        nodes = self._nodes()
        summarizer, region_of = self._inventories.at(self._nodes_version)

        def evaluate(
            spec: Mapping[str, Any], plans: PlanMemo = self._plans, advise: bool = True
        ) -> WorkloadEvaluation:
            return recommend.evaluate_workload(
                spec, nodes, policy, summarizer, planner=plans, region_of=region_of, advise=advise
            )

        parsed = parse_spec(record.spec) if self.live is not None else None
        spec: Mapping[str, Any] = record.spec
        if parsed is not None and self.live is not None and (reading is not None or view is not None):
            spec = self.live.planned_spec(key, parsed, reading).to_wire()
        # With a reading, the live step plans this same spec with every option kept: planning the status
        # through that memo too makes the live step's plan a cache hit instead of a second planning.
        deferred = False
        if reading is not None:
            evaluation = evaluate(spec, self._live_plans)
        else:
            evaluation = evaluate(spec, self._plans, advise)
            # A plan means the memo was called, so what it says of its last call is of this one.
            deferred = not advise and evaluation.plan is not None and self._plans.lacked_advice()
        if reading is not None and parsed is not None and self.live is not None:
            # Its own memo, with every option kept: the deployment's option may rank anywhere.
            view = self.live.evaluate(
                key, parsed, reading, lambda s: evaluate(s.to_wire(), self._live_plans).plan, policy
            )
        if view is None:
            return evaluation, deferred
        return evaluation.with_live(view.conditions, view.fields, view.basis), deferred

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
        evaluation = selection.evaluate_policy(
            record.name,
            record.spec,
            workloads,
            self._policies(key.namespace),
            unknown_products(self._nodes()),
        )
        current = self.writer.known_status(record)
        desired = status_of(evaluation, record.generation, current.get("conditions"), self.clock())
        await self.writer.write(record, desired)


def figures_of(evaluation: WorkloadEvaluation) -> dict[str, float]:
    """What the per-workload gauges show: current replicas (live) and the recommendation's cost,
    power and emissions per hour."""
    out: dict[str, float] = {}
    current = evaluation.live_fields.get("scaling", {}).get("currentReplicas")
    if current is not None:
        out["current_replicas"] = current
    recommendation = evaluation.plan.recommendation if evaluation.plan is not None else None
    if recommendation is not None:
        predicted = recommendation.predicted
        for name in ("usd_per_hour", "watts", "grams_co2_per_hour"):
            if (value := getattr(predicted, name)) is not None:
                out[name] = value
    return out
