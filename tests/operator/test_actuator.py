"""Guarded auto-apply in the operator, against an in-memory target and status: the intent is in the
status before the patch, a crash at either side of the patch neither repeats nor loses the action,
another autoscaler / a pause / a closed switch block it and say so, a regressed scale-in is rolled
back, a dry run patches nothing, a refused patch is not hammered. The lab tests run the same against a
real API server (tests/lab/test_auto_apply.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from greenmatrix_operator.adapters import kube
from greenmatrix_operator.adapters.scale import ScaleForbidden
from greenmatrix_operator.control.actuator import Actuator, Step
from greenmatrix_operator.metrics import OperatorMetrics
from greenmatrix_operator.records import WORKLOAD_PROFILE, ObjectRecord, parse_policies
from greenmatrix_operator.settings import ActuationSettings
from hypothesis import given, settings
from hypothesis import strategies as st

from greenmatrix.api.workloadprofile import WorkloadProfileStatus
from greenmatrix.live.actuation import Autoscaler
from greenmatrix.live.verification import Sample


@dataclass
class Cluster:
    """One Deployment's scale subresource, the WorkloadProfile's status and the Events posted."""

    replicas: int = 2
    generation: int = 5
    version: int = 100
    paused: bool = False
    others: tuple[Autoscaler, ...] = ()
    listed_others: tuple[Autoscaler, ...] | None = None
    """What a listing made earlier found (None: the same as `others`)."""
    fresh_listings: int = 0
    forbidden: bool = False
    status: dict[str, Any] = field(default_factory=dict)
    patches: list[int] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)

    def target(self) -> kube.Target:
        return kube.Target(
            "Deployment",
            "chat",
            self.replicas,
            self.replicas,
            1,
            "L4",
            self.generation,
            str(self.version),
            self.paused,
        )

    # Scaler
    async def scale(self, namespace: str, kind: str, name: str, replicas: int, resource_version: str) -> int:
        last = self.status.get("lastAction") or {}
        assert last.get("phase") == "Intended" and last.get("toReplicas") == replicas, (
            "patched before the intent was recorded"
        )
        if self.forbidden:
            raise ScaleForbidden("deployments.apps/scale is forbidden")
        self.patches.append(replicas)
        self.replicas, self.generation, self.version = replicas, self.generation + 1, self.version + 1
        return replicas

    async def autoscalers(
        self, namespace: str, kind: str, name: str, *, max_age: float | None = None
    ) -> tuple[Autoscaler, ...]:
        # The gate may read a listing made before an autoscaler appeared; a listing made now never.
        if max_age == 0.0:
            self.fresh_listings += 1
            return self.others
        return self.listed_others if self.listed_others is not None else self.others

    # Targets
    async def read(self, namespace: str, kind: str, name: str) -> Mapping[str, Any]:
        return {
            "kind": "Deployment",
            "metadata": {"name": "chat", "generation": self.generation, "resourceVersion": str(self.version)},
            "spec": {"replicas": self.replicas, "template": {"spec": {"containers": []}}},
            "status": {"readyReplicas": self.replicas},
        }

    async def post_event(self, record: ObjectRecord, type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


SPEC = {
    "task": "inference",
    "model": {"name": "meta-llama/Llama-3.1-8B-Instruct"},
    "inference": {"slo": {"ttftMs": 500}},
    "targetRef": {"kind": "Deployment", "name": "chat"},
}


def profile(paused: bool = False) -> ObjectRecord:
    return ObjectRecord(WORKLOAD_PROFILE, "ns", "wp", "uid", 1, "1", {}, SPEC, {}, paused)


def auto(**scaling: object) -> Any:
    rules = {"cooldown": "5m", "scaleDownStabilization": "5m", "maxScaleUpStep": 4, **scaling}
    return parse_policies([("auto", {"mode": "Auto", "scaling": rules})])[0]


def actuator(cluster: Cluster, clock: Clock, **settings: Any) -> Actuator:
    knobs = {"enabled": True, "settle": 30.0, "window": 120.0, "min_samples": 3, **settings}
    return Actuator(
        cluster, cluster, cluster.post_event, ActuationSettings(**knobs), OperatorMetrics(), clock=clock
    )


def decision(desired: int, current: int) -> dict[str, Any]:
    return {
        "currentReplicas": current,
        "desiredReplicas": desired,
        "reason": f"{desired} replicas serve the forecast",
        "predictedUtilization": {"p10": 0.4, "p50": 0.5, "p90": 0.6},
    }


def evaluate(
    a: Actuator,
    cluster: Cluster,
    desired: int | None,
    *,
    policy: Any = None,
    ttft_ms: float = 200.0,
    wp: ObjectRecord | None = None,
    fresh: bool = True,
    crash_before_patch: bool = False,
) -> Step:
    """One reconcile as the reconciler runs it: step, record the intent, patch, record the outcome."""
    target = cluster.target() if fresh else None
    sample = Sample(a.clock(), cluster.replicas, 0.5, ttft_ms, 20.0) if fresh else None
    scaling = decision(desired, cluster.replicas) if desired is not None and fresh else None
    step = asyncio.run(
        a.step(wp or profile(), cluster.status, policy or auto(), target, scaling, fresh, sample, fresh=fresh)
    )
    cluster.status = dict(step.view.fields)
    if step.intent is not None and not crash_before_patch:
        view = asyncio.run(a.apply(wp or profile(), step.intent))
        cluster.status = dict(view.fields)
    return step


def test_an_action_is_recorded_before_the_patch_then_applied_with_an_event() -> None:
    cluster, clock = Cluster(), Clock()
    step = evaluate(actuator(cluster, clock), cluster, 5)
    assert cluster.patches == [5] and cluster.replicas == 5
    last = cluster.status["lastAction"]
    assert (last["phase"], last["fromReplicas"], last["toReplicas"], last["kind"]) == (
        "Applied",
        2,
        5,
        "Scale",
    )
    assert last["targetGeneration"] == 5 and "forecast" in last["reason"]
    assert [e[:2] for e in cluster.events] == [("Normal", "ScaledOut")]
    assert step.view.conditions[0].type == "AutoApply" and step.view.conditions[0].status == "True"
    WorkloadProfileStatus.model_validate(cluster.status)  # what the CRD admits


def test_no_second_action_within_the_cooldown() -> None:
    cluster, clock = Cluster(), Clock()
    a = actuator(cluster, clock)
    evaluate(a, cluster, 5)
    clock.now += 60
    step = evaluate(a, cluster, 8)
    assert cluster.patches == [5]
    auto_apply = step.view.conditions[0]
    assert (auto_apply.status, auto_apply.reason) == ("True", "Cooldown")
    clock.now += 300
    evaluate(a, cluster, 8)
    assert cluster.patches == [5, 8]
    assert [x["toReplicas"] for x in cluster.status["actions"]] == [8, 5]
    # The first is judged no more: what follows is the second's doing.
    overtaken = cluster.status["actions"][1]["verification"]
    assert overtaken["result"] == "Inconclusive" and "followed" in overtaken["reason"]


@pytest.mark.parametrize("crash_after_patch", [False, True])
def test_a_crash_around_the_patch_neither_repeats_nor_loses_the_action(crash_after_patch: bool) -> None:
    cluster, clock = Cluster(), Clock()
    first = actuator(cluster, clock)
    step = evaluate(first, cluster, 5, crash_before_patch=True)
    assert step.intent is not None and cluster.status["lastAction"]["phase"] == "Intended"
    if crash_after_patch:  # the patch went through, the process died before recording it
        asyncio.run(cluster.scale("ns", "Deployment", "chat", 5, str(cluster.version)))
    clock.now += 5
    restarted = actuator(cluster, clock)
    # The restarted process settles the intent on its first reconcile, before any evaluation is due.
    evaluate(restarted, cluster, None, fresh=False)
    assert cluster.patches == [5]
    assert cluster.status["lastAction"]["phase"] == "Applied"
    assert len(cluster.status["actions"]) == 1


def test_an_intent_overtaken_by_a_user_is_dropped_not_forced() -> None:
    cluster, clock = Cluster(), Clock()
    evaluate(actuator(cluster, clock), cluster, 5, crash_before_patch=True)
    cluster.replicas, cluster.generation = 3, cluster.generation + 1  # kubectl scale --replicas=3
    evaluate(actuator(cluster, clock), cluster, None, fresh=False)
    assert cluster.patches == [] and cluster.replicas == 3
    assert cluster.status["lastAction"]["phase"] == "Superseded"


@pytest.mark.parametrize(
    ("kind", "reason"), [("HorizontalPodAutoscaler", "HPAPresent"), ("ScaledObject", "ScaledObjectPresent")]
)
def test_another_autoscaler_blocks_and_is_named(kind: str, reason: str) -> None:
    cluster, clock = Cluster(others=(Autoscaler(kind, "other"),)), Clock()  # type: ignore[arg-type]
    a = actuator(cluster, clock)
    step = evaluate(a, cluster, 5)
    clock.now += 60
    evaluate(a, cluster, 6)
    assert cluster.patches == []
    conditions = {c.type: c for c in step.view.conditions}
    assert (conditions["AutoApply"].status, conditions["AutoApply"].reason) == ("False", "Conflict")
    assert (conditions["Conflict"].status, conditions["Conflict"].reason) == ("True", reason)
    assert f"{kind} other" in conditions["Conflict"].message
    assert [e[:2] for e in cluster.events] == [("Warning", reason)]  # once, not every evaluation
    assert a.metrics.action_blocks.value("Conflict") == 2


def test_an_autoscaler_created_since_the_last_listing_still_stops_the_action() -> None:
    hpa = Autoscaler("HorizontalPodAutoscaler", "theirs")  # type: ignore[arg-type]
    cluster, clock = Cluster(others=(hpa,), listed_others=()), Clock()
    a = actuator(cluster, clock)
    step = evaluate(a, cluster, 5)
    assert cluster.patches == [] and step.intent is None and "lastAction" not in cluster.status
    conditions = {c.type: c for c in step.view.conditions}
    assert (conditions["AutoApply"].reason, conditions["Conflict"].reason) == ("Conflict", "HPAPresent")
    assert [e[:2] for e in cluster.events] == [("Warning", "HPAPresent")]


def test_a_fresh_listing_is_made_only_for_an_action() -> None:
    cluster, clock = Cluster(), Clock()
    a = actuator(cluster, clock)
    evaluate(a, cluster, 5)
    for _ in range(5):  # within the cooldown: nothing to act on, the shared listing serves
        clock.now += 20
        evaluate(a, cluster, 6)
    assert cluster.patches == [5] and cluster.fresh_listings == 1


@pytest.mark.parametrize("where", ["policy", "profile", "target"])
def test_paused_anywhere_applies_nothing(where: str) -> None:
    cluster, clock = Cluster(paused=where == "target"), Clock()
    policy = parse_policies([("auto", {"mode": "Auto", "paused": where == "policy"})])[0]
    step = evaluate(
        actuator(cluster, clock), cluster, 5, policy=policy, wp=profile(paused=where == "profile")
    )
    assert cluster.patches == []
    assert (step.view.conditions[0].status, step.view.conditions[0].reason) == ("False", "Paused")


def test_without_the_admin_switch_nothing_is_applied() -> None:
    cluster, clock = Cluster(), Clock()
    step = evaluate(actuator(cluster, clock, enabled=False), cluster, 5)
    assert cluster.patches == [] and step.view.conditions[0].reason == "AutoApplyNotEnabled"


def test_recommend_mode_writes_no_auto_apply_status() -> None:
    cluster, clock = Cluster(), Clock()
    recommend = parse_policies([("r", {"mode": "Recommend"})])[0]
    step = evaluate(actuator(cluster, clock), cluster, 5, policy=recommend)
    assert cluster.patches == [] and step.view.conditions == () and step.view.fields == {}


def test_dry_run_records_and_patches_nothing() -> None:
    cluster, clock = Cluster(), Clock()
    evaluate(actuator(cluster, clock, dry_run=True), cluster, 5)
    assert cluster.patches == []
    assert cluster.status["lastAction"]["phase"] == "DryRun"
    assert [e[:2] for e in cluster.events] == [("Normal", "DryRun")]


def test_a_refused_patch_is_recorded_and_not_retried_within_the_cooldown() -> None:
    cluster, clock = Cluster(forbidden=True), Clock()
    a = actuator(cluster, clock)
    step = evaluate(a, cluster, 5)
    assert cluster.status["lastAction"]["phase"] == "Failed"
    assert [e[:2] for e in cluster.events] == [("Warning", "ScaleForbidden")]
    clock.now += 60
    step = evaluate(a, cluster, 5)
    assert step.intent is None and len(cluster.status["actions"]) == 1


def test_a_scale_in_that_breaks_the_slo_is_rolled_back() -> None:
    cluster, clock = Cluster(replicas=4), Clock()
    a = actuator(cluster, clock)
    evaluate(a, cluster, 4)
    clock.now += 600  # watched for a whole stabilisation window
    evaluate(a, cluster, 3)
    assert cluster.patches == [3]
    for _ in range(12):  # past the SLO (500 ms) at every evaluation after the scale-in
        clock.now += 15
        step = evaluate(a, cluster, 3, ttft_ms=900.0)
    assert cluster.patches == [3, 4], "rolled back to the previous count"
    rollback, judged = cluster.status["actions"][:2]
    assert rollback["kind"] == "Rollback" and (rollback["fromReplicas"], rollback["toReplicas"]) == (3, 4)
    assert judged["verification"]["result"] == "Regressed" and "TTFT p95" in judged["verification"]["reason"]
    assert rollback["cooldownSeconds"] > 300, "the cooldown backs off"
    conditions = {c.type: c for c in step.view.conditions}
    assert conditions["RolledBack"].status == "True" and conditions["RolledBack"].reason == "ScaleInRegressed"
    assert ("Warning", "RolledBack") in [e[:2] for e in cluster.events]
    assert a.metrics.rollbacks.value() == 1
    # The next scale-in waits out the backed-off cooldown.
    clock.now += 400
    evaluate(a, cluster, 3)
    assert cluster.patches == [3, 4]


def test_a_scale_in_that_holds_is_verified_holding() -> None:
    cluster, clock = Cluster(replicas=4), Clock()
    a = actuator(cluster, clock)
    evaluate(a, cluster, 4)
    clock.now += 600
    evaluate(a, cluster, 3)
    for _ in range(14):
        clock.now += 15
        evaluate(a, cluster, 3, ttft_ms=250.0)
    assert cluster.patches == [3]
    assert cluster.status["lastAction"]["verification"]["result"] == "Holding"


def test_a_restarted_process_does_not_scale_in_on_its_first_look() -> None:
    cluster, clock = Cluster(replicas=4), Clock()
    step = evaluate(actuator(cluster, clock), cluster, 3)
    assert cluster.patches == [] and step.view.conditions[0].reason == "StabilizationWarmup"


# --- repeated crashes: nothing lost, nothing repeated ---------------------------------------------

# Each evaluation: (seconds later, desired replicas, where the process dies: None, "before", "after")
crashes = st.lists(
    st.tuples(st.integers(5, 400), st.integers(1, 10), st.sampled_from([None, "before", "after"])),
    min_size=1,
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(sequence=crashes)
def test_repeated_crashes_neither_lose_nor_repeat_an_action(sequence: list) -> None:
    cluster, clock = Cluster(replicas=3), Clock()
    patched_ids: list[str] = []
    real_scale = cluster.scale

    async def scale(namespace: str, kind: str, name: str, replicas: int, resource_version: str) -> int:
        patched_ids.append(cluster.status["lastAction"]["id"])
        return await real_scale(namespace, kind, name, replicas, resource_version)

    cluster.scale = scale  # type: ignore[method-assign]
    a = actuator(cluster, clock, history=64)
    for gap, desired, crash in sequence:
        clock.now += gap
        target, sample = cluster.target(), Sample(clock.now, cluster.replicas, 0.5, 200.0, 20.0)
        step = asyncio.run(
            a.step(
                profile(),
                cluster.status,
                auto(),
                target,
                decision(desired, cluster.replicas),
                True,
                sample,
                fresh=True,
            )
        )
        cluster.status = dict(step.view.fields)
        if step.intent is None:
            continue
        if crash == "before":
            a = actuator(cluster, clock, history=64)  # died with the intent recorded, nothing patched
        else:
            view = asyncio.run(a.apply(profile(), step.intent))
            if crash == "after":
                a = actuator(cluster, clock, history=64)  # patched, died before recording it
            else:
                cluster.status = dict(view.fields)
        # A restarted process settles what it finds on its first reconcile.
        step = asyncio.run(a.step(profile(), cluster.status, auto(), None, None, False, None, fresh=False))
        cluster.status = dict(step.view.fields)
        if step.intent is not None:
            cluster.status = dict(asyncio.run(a.apply(profile(), step.intent)).fields)
    actions = cluster.status.get("actions", [])
    applied = [x["id"] for x in actions if x["phase"] == "Applied"]
    assert len(patched_ids) == len(set(patched_ids)), f"an action patched twice: {patched_ids}"
    assert sorted(patched_ids) == sorted(applied), "a patch not recorded as Applied, or the reverse"
    assert all(x["phase"] in ("Applied", "Superseded") for x in actions), actions
    for x in actions:
        if x["phase"] == "Applied":
            assert 1 <= x["toReplicas"] <= 10 and -1 <= x["toReplicas"] - x["fromReplicas"] <= 4
