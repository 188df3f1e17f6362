"""The operator's loop without a cluster: queue semantics, condition bookkeeping, evaluation, writes.

The reconciler reads plain mappings shaped like Kopf's indexes and writes through a fake API
(`fake_api`), so these tests check the decisions (what is written, when, which Event) exactly;
the same code runs against a real API server in tests/lab/test_operator.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import pytest
from fake_api import FakeStatusApi
from greenmatrix_operator.adapters.kube import Gone, Unavailable, node_hardware
from greenmatrix_operator.control.profiles import ProfileStore
from greenmatrix_operator.control.recommend import evaluate_workload
from greenmatrix_operator.control.reconciler import Indexes, Reconciler
from greenmatrix_operator.control.selection import evaluate_policy
from greenmatrix_operator.control.workqueue import WorkQueue
from greenmatrix_operator.control.writer import status_patch
from greenmatrix_operator.records import (
    OPTIMIZATION_POLICY,
    WORKLOAD_PROFILE,
    ObjectKey,
    ObjectRecord,
    PolicyView,
    parse_policies,
)
from greenmatrix_operator.status.conditions import ConditionState, merge_conditions
from greenmatrix_operator.status.evaluation import WorkloadEvaluation

from greenmatrix import LISTED_WORKLOADS, NodeHardware, OptimizationPolicyStatus, applied_policy

H100 = NodeHardware.from_node(
    "h0",
    {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "topology.kubernetes.io/region": "us-east-1"},
    {"nvidia.com/gpu": "8"},
)
L4 = NodeHardware.from_node(
    "l0",
    {"nvidia.com/gpu.product": "NVIDIA-L4", "topology.kubernetes.io/region": "us-east-1"},
    {"nvidia.com/gpu": "1"},
)
CHAT = {"task": "inference", "model": {"name": "meta-llama/Llama-3.1-8B-Instruct"}, "inference": {}}


# --- work queue ---------------------------------------------------------------------------------


def test_queue_coalesces_a_burst_into_one_item() -> None:
    async def scenario() -> list[str]:
        queue: WorkQueue[str] = WorkQueue(debounce=0.01)
        for _ in range(5):
            queue.add("a")
        queue.add("b")
        got = [await queue.get(), await queue.get()]
        assert len(queue) == 0
        return got

    assert sorted(asyncio.run(scenario())) == ["a", "b"]


def test_queue_never_hands_out_a_key_being_processed_and_requeues_it_after() -> None:
    async def scenario() -> None:
        queue: WorkQueue[str] = WorkQueue(debounce=0)
        queue.add("a")
        first = await queue.get()
        queue.add("a")  # changed while being processed
        assert len(queue) == 0 and queue.processing == 1
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(queue.get(), 0.05)
        queue.done(first)
        assert await asyncio.wait_for(queue.get(), 5) == "a"

    asyncio.run(scenario())


def test_queue_earlier_schedule_wins() -> None:
    async def scenario() -> str:
        queue: WorkQueue[str] = WorkQueue(debounce=0)
        queue.add("late", delay=3600)
        queue.add("soon", delay=0.01)
        queue.add("late", delay=0)  # a fresh change overrides a pending retry delay
        return await asyncio.wait_for(queue.get(), 5)

    assert asyncio.run(scenario()) == "late"


def test_queue_serves_new_work_before_a_bulk_resync() -> None:
    async def scenario() -> list[str]:
        queue: WorkQueue[str] = WorkQueue(debounce=0)
        for i in range(100):
            queue.add(f"settled-{i}", bulk=True)  # the start's resync of existing profiles
        first = await queue.get()
        queue.done(first)
        queue.add("created")  # a profile created during the resync
        queue.add("settled-50")  # edited during the resync: no longer bulk
        queue.add("settled-60", bulk=True)  # a second bulk add changes nothing
        got = [await queue.get() for _ in range(3)]
        for key in got:
            queue.done(key)
        rest = [await queue.get() for _ in range(97)]
        assert len(queue) == 0 and len(set(rest)) == 97
        return got

    got = asyncio.run(scenario())
    assert got[:2] in (["created", "settled-50"], ["settled-50", "created"]) and got[2].startswith("settled-")


# --- conditions and patches ---------------------------------------------------------------------


def test_transition_time_moves_only_when_status_flips() -> None:
    first = merge_conditions(None, [ConditionState("Ready", "True", "HardwareMatched", "x")], 1, "T1")
    same = merge_conditions(first, [ConditionState("Ready", "True", "HardwareMatched", "y")], 2, "T2")
    assert same[0]["lastTransitionTime"] == "T1"
    assert same[0]["observedGeneration"] == 2 and same[0]["message"] == "y"
    flipped = merge_conditions(same, [ConditionState("Ready", "False", "NoMatchingHardware", "z")], 2, "T3")
    assert flipped[0]["lastTransitionTime"] == "T3"


def test_conditions_of_other_controllers_are_kept() -> None:
    foreign = {"type": "Audited", "status": "True", "reason": "Ok", "lastTransitionTime": "T0"}
    out = merge_conditions([foreign], [ConditionState("Ready", "True", "HardwareMatched")], 1, "T1")
    assert [c["type"] for c in out] == ["Ready", "Audited"]


def test_status_patch_is_none_when_equal_and_nulls_dropped_keys() -> None:
    assert status_patch({"a": 1, "b": [1]}, {"a": 1, "b": [1]}) is None
    assert status_patch({"a": 1, "inventory": {}}, {"a": 2}) == {"a": 2, "inventory": None}


def test_status_patch_nulls_keys_dropped_inside_objects() -> None:
    # A merge patch merges into objects: a recommendation that lost its sloMargin must say so, or the
    # API server keeps the old value for good (the lab's convergence test found it).
    current = {"recommendation": {"gpu": "L4", "predicted": {"sloMargin": True, "tpotMs": {"p50": 9}}}}
    desired = {"recommendation": {"gpu": "L4", "predicted": {"tpotMs": {"p50": 9}}}}
    assert status_patch(current, desired) == {"recommendation": {"predicted": {"sloMargin": None}}}
    assert status_patch(desired, desired) is None


# --- evaluation ---------------------------------------------------------------------------------


def ready(evaluation: WorkloadEvaluation) -> ConditionState:
    return next(c for c in evaluation.conditions if c.type == "Ready")


def test_matching_hardware_makes_ready() -> None:
    result = evaluate_workload(CHAT, [H100, L4])
    assert (ready(result).status, ready(result).reason) == ("True", "RecommendationProvided")
    assert result.inventory is not None and result.inventory.matched_nodes == 2


def test_unknown_model_is_not_ready_and_invalid() -> None:
    result = evaluate_workload({**CHAT, "model": {"name": "nope/nope"}}, [H100])
    by_type = {c.type: c for c in result.conditions}
    assert (by_type["Ready"].status, by_type["Ready"].reason) == ("False", "UnknownModel")
    assert (by_type["InvalidSpec"].status, by_type["InvalidSpec"].reason) == ("True", "UnknownModel")
    assert "spec.model.name" in by_type["Ready"].message
    assert result.inventory is None


def test_no_matching_hardware_names_the_policy_that_narrowed_it() -> None:
    policy = PolicyView(
        "strict", parse_policies([("strict", {"constraints": {"regions": ["eu-west-1"]}})])[0].spec
    )
    result = evaluate_workload(CHAT, [H100, L4], policy)
    assert (ready(result).status, ready(result).reason) == ("False", "NoMatchingHardware")
    assert "OptimizationPolicy strict" in ready(result).message


def test_schema_drift_becomes_invalid_spec_not_a_crash() -> None:
    result = evaluate_workload({"task": "inference", "model": {"name": "x", "bogus": 1}}, [H100])
    assert ready(result).reason == "InvalidSpec"
    assert "spec.model.bogus" in ready(result).message


def test_highest_priority_wins_and_ties_go_to_the_first_name() -> None:
    policies = parse_policies(
        [
            ("b-team", {"selector": {"matchLabels": {"team": "chat"}}, "priority": 5}),
            ("a-team", {"selector": {"matchLabels": {"team": "chat"}}, "priority": 5}),
            ("default", {"priority": 0}),
        ]
    )
    winner = applied_policy(policies, {"team": "chat"})
    assert winner is not None and winner.name == "a-team"
    other = applied_policy(policies, {"team": "search"})
    assert other is not None and other.name == "default"


def test_policy_status_lists_selected_and_applied() -> None:
    raw = [("chat", {"selector": {"matchLabels": {"team": "chat"}}, "priority": 10}), ("all", {})]
    policies = parse_policies(raw)
    workloads = [("z-chat", {"team": "chat"}), ("search", {"team": "search"}), ("a-chat", {"team": "chat"})]
    everyone = evaluate_policy("all", {}, workloads, policies)
    assert everyone.selected == ("a-chat", "search", "z-chat")
    assert everyone.applied == ("search",)
    chat = evaluate_policy("chat", raw[0][1], workloads, policies)
    assert chat.selected == chat.applied == ("a-chat", "z-chat")


# --- the reconciler -----------------------------------------------------------------------------


def wp(
    name: str, spec: Mapping[str, Any] = CHAT, labels: Mapping[str, str] | None = None, **kw: Any
) -> ObjectRecord:
    return ObjectRecord(
        kind=WORKLOAD_PROFILE,
        namespace="ml",
        name=name,
        uid=f"uid-{name}",
        generation=kw.get("generation", 1),
        resource_version=kw.get("rv", "1"),
        labels=dict(labels or {}),
        spec=dict(spec),
        status=kw.get("status", {}),
    )


def make(nodes: list[NodeHardware], records: list[ObjectRecord], policies: list[ObjectRecord] = ()) -> tuple:  # type: ignore[assignment,type-arg]
    writer = FakeStatusApi()
    reconciler = Reconciler(writer, clock=lambda: "2026-01-01T00:00:00Z")
    indexes = Indexes(
        nodes={n.name: [n] for n in nodes},
        workloads={(r.namespace, r.name): [r] for r in records},
        workload_names={"ml": [r.name for r in records]},
        policies={"ml": list(policies)},
    )
    reconciler.bind(indexes)
    return reconciler, writer, indexes


def test_reconcile_writes_once_then_nothing_for_unchanged_inputs() -> None:
    record = wp("chat")
    reconciler, writer, indexes = make([H100], [record])
    asyncio.run(reconciler.reconcile(record.key))
    assert len(writer.patches) == 1
    status = writer.statuses[record.key]
    assert status["observedGeneration"] == 1
    assert status["inventory"]["gpus"][0]["gpu"] == "H100-SXM-80GB"
    assert writer.events == [(record.key, "Normal", "RecommendationProvided")]
    # Before the watch echoes the write, and after it: no second write, no second Event.
    asyncio.run(reconciler.reconcile(record.key))
    echoed = wp("chat", rv="2", status=status)
    indexes.workloads[("ml", "chat")] = [echoed]
    asyncio.run(reconciler.reconcile(record.key))
    assert len(writer.patches) == 1 and len(writer.events) == 1


def test_node_change_updates_inventory_and_warns_when_nothing_matches() -> None:
    record = wp("l4-only", {**CHAT, "hardware": {"allowedGpus": ["NVIDIA-L4"], "allowCpu": False}})
    reconciler, writer, indexes = make([H100, L4], [record])
    asyncio.run(reconciler.reconcile(record.key))
    assert writer.statuses[record.key]["inventory"]["matchedNodes"] == 1
    del indexes.nodes["l0"]
    reconciler.node_changed("l0", None)
    assert len(reconciler.queue) == 1  # the profile was queued by the node change
    asyncio.run(reconciler.reconcile(record.key))
    ready = writer.statuses[record.key]["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "NoMatchingHardware")
    assert writer.events[-1] == (record.key, "Warning", "NoMatchingHardware")


def test_profiles_are_reconciled_before_the_start_listing_is_in_and_policies_after() -> None:
    async def scenario() -> None:
        reconciler, writer, indexes = make([H100], [wp("chat")])
        reconciler.profiles = ProfileStore(listed=False)
        indexes.policies["ml"] = [
            ObjectRecord(
                kind=OPTIMIZATION_POLICY,
                namespace="ml",
                name="base",
                uid="u",
                generation=1,
                resource_version="1",
            )
        ]
        reconciler.queue = WorkQueue(debounce=0)
        reconciler.queue.add(ObjectKey(OPTIMIZATION_POLICY, "ml", "base"))
        reconciler.queue.add(ObjectKey(WORKLOAD_PROFILE, "ml", "chat"))
        tasks = reconciler.start()
        try:
            for _ in range(200):
                await asyncio.sleep(0.01)
                if writer.statuses:
                    break
            assert [k.kind for k in writer.statuses] == [WORKLOAD_PROFILE]  # the policy waits
            reconciler.profiles.prime([])
            for _ in range(300):
                await asyncio.sleep(0.01)
                if len(writer.statuses) == 2:
                    break
            assert {k.kind for k in writer.statuses} == {WORKLOAD_PROFILE, OPTIMIZATION_POLICY}
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(scenario())


def test_a_policy_status_write_requeues_no_profile_and_our_own_echo_nothing() -> None:
    policy = ObjectRecord(OPTIMIZATION_POLICY, "ml", "base", "uid-p", 1, "5", spec={})
    reconciler, writer, indexes = make([H100], [wp("a"), wp("b")], [policy])
    reconciler.policy_changed("ml", "base", 1, policy)  # first seen: it and every profile
    assert len(reconciler.queue) == 3
    reconciler.queue = WorkQueue()
    reconciler.policy_changed("ml", "base", 1)  # a status write by someone else
    assert len(reconciler.queue) == 1  # the policy alone
    reconciler.queue = WorkQueue()
    asyncio.run(reconciler.reconcile(policy.key))
    echo = replace(policy, resource_version="6", status=writer.statuses[policy.key])
    indexes.policies["ml"] = [echo]
    reconciler.policy_changed("ml", "base", 1, echo)  # our own write's echo: nothing to redo
    assert len(reconciler.queue) == 0
    reconciler.policy_changed("ml", "base", 2, replace(echo, generation=2))  # its spec changed
    reconciler.policy_changed("ml", "gone", generation=None)  # deleted (never seen)
    assert len(reconciler.queue) == 4  # base, its two profiles, and gone (to be forgotten)


def test_a_burst_of_profiles_is_counted_by_its_policy_once() -> None:
    clock = [100.0]
    policy = ObjectRecord(OPTIMIZATION_POLICY, "ml", "base", "uid-p", 1, "5", spec={})
    reconciler, _, _ = make([H100], [], [policy])
    reconciler.queue = WorkQueue(clock=lambda: clock[0])
    recount = reconciler.settings.queue.policy_recount
    for i in range(20):  # 20 creates at 50/s
        reconciler.workload_changed(wp(f"p{i}", labels={"team": "chat"}))
        clock[0] += 0.02
    # One recount, when the first add asked for it: later adds do not push it back.
    assert reconciler.queue.due_at(policy.key) == pytest.approx(100.0 + recount)
    assert len(reconciler.queue) == 21


def test_unchanged_node_does_not_queue_anything() -> None:
    reconciler, _, _ = make([H100], [wp("chat")])
    reconciler.node_changed("h0", H100)
    assert len(reconciler.queue) == 1  # first sight of the node
    reconciler.queue = WorkQueue()
    # A heartbeat: a new event with the same labels parses to an equal NodeHardware.
    heartbeat = NodeHardware.from_node(
        "h0",
        {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "topology.kubernetes.io/region": "us-east-1"},
        {"nvidia.com/gpu": "8"},
    )
    reconciler.node_changed("h0", heartbeat)
    assert len(reconciler.queue) == 0
    reconciler.node_changed("h0", NodeHardware.from_node("h0", {}, {}, ready=False))
    assert len(reconciler.queue) == 1


def test_policy_status_and_applied_policy_constraints() -> None:
    chat = wp("chat", labels={"team": "chat"})
    policy = ObjectRecord(
        kind=OPTIMIZATION_POLICY,
        namespace="ml",
        name="eu-only",
        uid="uid-p",
        generation=3,
        resource_version="9",
        spec={"selector": {"matchLabels": {"team": "chat"}}, "constraints": {"regions": ["eu-west-1"]}},
    )
    reconciler, writer, _ = make([H100], [chat], [policy])
    asyncio.run(reconciler.reconcile(policy.key))
    status = writer.statuses[policy.key]
    assert status["selectedWorkloads"] == ["chat"] and status["selectedCount"] == 1
    assert status["appliedWorkloads"] == ["chat"]
    assert status["conditions"][0]["observedGeneration"] == 3
    asyncio.run(reconciler.reconcile(chat.key))
    assert writer.statuses[chat.key]["conditions"][0]["reason"] == "NoMatchingHardware"


def test_a_new_profile_reconciled_while_new_work_waits_gets_its_advice_in_a_pass_behind_it() -> None:
    alone, busy, other = wp("alone"), wp("busy", {**CHAT, "inference": {"concurrency": 24}}), wp("other")
    reconciler, writer, _ = make([H100], [alone, busy, other])
    asyncio.run(reconciler.reconcile(alone.key))  # nothing waits: the whole plan at once
    assert writer.statuses[alone.key]["advice"]
    assert len(reconciler.queue) == 0

    reconciler.queue.add(other.key, 0)  # new work waiting
    asyncio.run(reconciler.reconcile(busy.key))
    first = writer.statuses[busy.key]
    assert first["conditions"][0]["status"] == "True" and "recommendation" in first
    assert "advice" not in first
    assert reconciler.queue.due_at(busy.key) is not None  # queued again, as bulk: behind `other`

    asyncio.run(reconciler.reconcile(busy.key))  # the advice pass adds it; no second Event
    assert writer.statuses[busy.key]["advice"]
    assert writer.patches[-1] == (busy.key, {"advice": writer.statuses[busy.key]["advice"]})
    assert [e for e in writer.events if e[0] == busy.key] == [(busy.key, "Normal", "RecommendationProvided")]
    # What it wrote in two passes is what one pass writes.
    whole, _, _ = make([H100], [busy])
    asyncio.run(whole.reconcile(busy.key))
    assert whole.writer.api.statuses[busy.key] == writer.statuses[busy.key]


def test_a_policy_over_many_profiles_counts_them_all_and_lists_the_first_hundred() -> None:
    profiles = [wp(f"p{i:03d}", labels={"team": "chat" if i % 3 else "other"}) for i in range(300)]
    selector = {"selector": {"matchLabels": {"team": "chat"}}}
    chat = ObjectRecord(OPTIMIZATION_POLICY, "ml", "chat", "uid-c", 1, "5", spec=selector)
    base = ObjectRecord(OPTIMIZATION_POLICY, "ml", "base", "uid-b", 1, "6", spec={"priority": 5})
    reconciler, writer, _ = make([H100], profiles, [chat, base])
    asyncio.run(reconciler.reconcile(chat.key))
    status = writer.statuses[chat.key]
    selected = sorted(r.name for r in profiles if r.labels["team"] == "chat")
    assert (status["selectedCount"], status["appliedCount"]) == (200, 0)  # base's priority wins them
    assert status["selectedWorkloads"] == selected[:LISTED_WORKLOADS] and status["appliedWorkloads"] == []
    asyncio.run(reconciler.reconcile(base.key))
    status = writer.statuses[base.key]
    assert (status["selectedCount"], status["appliedCount"]) == (300, 300)
    assert status["appliedWorkloads"] == sorted(r.name for r in profiles)[:LISTED_WORKLOADS]
    OptimizationPolicyStatus.model_validate(status)  # the CRD's schema: at most 100 names


def test_api_faults_are_retried_and_gone_objects_forgotten() -> None:
    record = wp("chat")
    reconciler, writer, _ = make([H100], [record])

    async def settle(done: Callable[[], bool]) -> None:
        for _ in range(500):
            if done():
                return
            await asyncio.sleep(0.01)

    errors = reconciler.metrics.reconcile_errors

    async def scenario() -> None:
        tasks = reconciler.start()
        writer.fail_with = Unavailable("503")
        reconciler.queue.add(record.key, 0)
        await settle(lambda: errors.value() == 1 and not reconciler.queue.processing)
        assert errors.value() == 1
        assert len(reconciler.queue) == 1  # scheduled for a retry
        writer.fail_with = RuntimeError("a bug in the engine for this one object")
        reconciler.queue.add(record.key, 0)
        await settle(lambda: errors.value() == 2 and not reconciler.queue.processing)
        assert errors.value() == 2 and len(reconciler.queue) == 1
        writer.fail_with = Gone("404")
        reconciler.queue.add(record.key, 0)
        await settle(lambda: not len(reconciler.queue) and not reconciler.queue.processing)
        assert len(reconciler.queue) == 0  # gone: no retry
        assert errors.value() == 2
        assert not any(t.done() for t in tasks)  # the workers survived every fault
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(scenario())
    assert writer.patches == []


# --- the Kopf-facing shell ----------------------------------------------------------------------


def test_node_objects_become_node_hardware() -> None:
    labels = {"nvidia.com/gpu.product": "NVIDIA-L4", "topology.kubernetes.io/region": "us-east-1"}
    status = {
        "allocatable": {"cpu": "3920m", "nvidia.com/gpu": "1"},
        "conditions": [
            {"type": "MemoryPressure", "status": "False"},
            {"type": "Ready", "status": "True"},
        ],
    }
    node = node_hardware("l4", labels, {}, status)
    assert node.usable and node.gpu is not None and node.gpu.key == "L4" and node.cpu_cores == 3
    not_ready = node_hardware(
        "l4", labels, {}, {**status, "conditions": [{"type": "Ready", "status": "Unknown"}]}
    )
    assert not not_ready.usable
    cordoned = node_hardware("l4", labels, {"unschedulable": True}, status)
    assert cordoned.unschedulable and not cordoned.usable
    assert not node_hardware("new", labels, {}, {}).ready  # no conditions yet: not Ready


def test_metrics_are_prometheus_text() -> None:
    reconciler, _, _ = make([H100], [wp("chat")])
    asyncio.run(reconciler.reconcile(wp("chat").key))
    text = reconciler.metrics.render()
    assert 'greenmatrix_operator_reconciles_total{kind="WorkloadProfile"} 1' in text
    assert 'greenmatrix_operator_status_writes_total{kind="WorkloadProfile"} 1' in text
    assert "# TYPE greenmatrix_operator_queue_depth gauge" in text
    assert text.count("# TYPE greenmatrix_operator_reconciles_total counter") == 1


def test_a_doubtful_spec_is_planned_and_warned_about_once() -> None:
    """Valid numbers that are unlikely to be meant: a recommendation, an InvalidSpec=False condition
    saying why, and one Warning Event however often the profile is reconciled."""
    arch = {"parameters": 1e6, "layers": 80, "hiddenSize": 8192, "attentionHeads": 64, "kvHeads": 8}
    record = wp("odd", {"task": "inference", "model": {"architecture": arch}, "inference": {}})
    reconciler, writer, indexes = make([H100], [record])
    asyncio.run(reconciler.reconcile(record.key))
    status = writer.statuses[record.key]
    invalid = next(c for c in status["conditions"] if c["type"] == "InvalidSpec")
    assert (invalid["status"], invalid["reason"]) == ("False", "SpecDoubtful")
    assert invalid["message"].startswith("spec.model.architecture.parameters: ")
    assert "recommendation" in status
    assert (record.key, "Warning", "SpecDoubtful") in writer.events
    echoed = wp(
        "odd", {"task": "inference", "model": {"architecture": arch}, "inference": {}}, rv="2", status=status
    )
    indexes.workloads[("ml", "odd")] = [echoed]
    reconciler.node_changed("h0", H100)
    asyncio.run(reconciler.reconcile(record.key))
    assert writer.events.count((record.key, "Warning", "SpecDoubtful")) == 1
    # Fixing the numbers clears the doubt.
    fixed = {**arch, "parameters": 6.9e10}
    indexes.workloads[("ml", "odd")] = [
        wp(
            "odd",
            {"task": "inference", "model": {"architecture": fixed}, "inference": {}},
            rv="3",
            status=status,
        )
    ]
    asyncio.run(reconciler.reconcile(record.key))
    invalid = next(c for c in writer.statuses[record.key]["conditions"] if c["type"] == "InvalidSpec")
    assert invalid["reason"] == "SpecValid"


def test_metrics_keep_their_names_and_labels() -> None:
    # Dashboards and the lab tests read these series by name: the typed metrics expose the same ones.
    reconciler, _, _ = make([H100], [wp("chat")])
    series = [line.split(" ")[0] for line in reconciler.metrics.render().splitlines() if line[0] != "#"]
    prefix = "greenmatrix_operator_"
    assert series == [
        f'{prefix}reconciles_total{{kind="WorkloadProfile"}}',
        f'{prefix}reconciles_total{{kind="OptimizationPolicy"}}',
        f'{prefix}status_writes_total{{kind="WorkloadProfile"}}',
        f'{prefix}status_writes_total{{kind="OptimizationPolicy"}}',
        f'{prefix}events_total{{type="Normal"}}',
        f'{prefix}events_total{{type="Warning"}}',
        f"{prefix}reconcile_errors_total",
        f"{prefix}node_changes_total",
        f"{prefix}plan_cache_hits_total",
        f"{prefix}plan_duration_seconds_sum",
        f"{prefix}plan_duration_seconds_count",
        f"{prefix}live_evaluations_total",
        *(f'{prefix}actions_total{{result="{r}"}}' for r in ("Applied", "DryRun", "Superseded", "Failed")),
        f"{prefix}rollbacks_total",
        f"{prefix}action_patch_seconds_sum",
        f"{prefix}action_patch_seconds_count",
        f"{prefix}workloads_without_metrics",
        f"{prefix}queue_depth",
        f"{prefix}queue_in_progress",
    ]


def test_a_key_scheduled_for_later_is_waiting_not_queued() -> None:
    # The live loop re-adds each workload for its next evaluation: an idle operator shows depth 0.
    now = [0.0]
    queue: WorkQueue[str] = WorkQueue(debounce=0.0, clock=lambda: now[0])
    queue.add("soon", 0.0)
    queue.add("later", 300.0)
    assert len(queue) == 2 and queue.ready == 1
    now[0] = 301.0
    assert queue.ready == 2
