"""Convergence: whatever users and the cluster did, once things are quiet every status is what a fresh
evaluation of the state says.

A seeded random sequence of changes (WorkloadProfiles, OptimizationPolicies and kwok GPU nodes
created, patched, relabelled, cordoned, deleted, deleted and created again at once) runs against the
`greenmatrix operator` subprocess of `operator_fixtures`, mostly in bursts with no pause. Whenever
the sequence settles, and at its end, the test waits until the operator's queue has been empty for
a while, reads the profiles, policies and nodes from the API server and evaluates them with the
operator's own code in this process (`adapters.kube.node_hardware` for the nodes, the engine's
`applied_policy`, `evaluate_workload` and `evaluate_policy` for the statuses, laid out by
`status.evaluation`). Each
status must equal that evaluation field for field, but for the conditions' lastTransitionTime (see
`_timeless`). Numbers are compared exactly: the same code on the same inputs gives the same floats,
and the API server returns JSON numbers as they were written.

A second test reaches one final state by two orders of the same changes and compares the statuses.

The expectation is recomputed from the state, never remembered from the sequence, so the test says
nothing about which GPU is best, only that the operator ends where a fresh start would. The lab is
shared with other sessions, which may add nodes: the node set is read before and after the objects
and the snapshot retried when it moved.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from greenmatrix_lab import Lab
from greenmatrix_operator.adapters.kube import node_hardware
from greenmatrix_operator.control.recommend import Planner, evaluate_workload, planner_for
from greenmatrix_operator.control.selection import evaluate_policy
from greenmatrix_operator.records import parse_policies
from greenmatrix_operator.status.conditions import READY
from greenmatrix_operator.status.evaluation import status_of
from operator_helpers import RunningOperator, get_json, wait_until

from greenmatrix import GROUP, VERSION, NodeHardware, Predictors, applied_policy, unknown_products

pytest_plugins = ["operator_fixtures"]

# Another sequence: GREENMATRIX_CONVERGENCE_SEED=7 ./hack/test.sh tests/lab/test_convergence.py
SEED = int(os.environ.get("GREENMATRIX_CONVERGENCE_SEED", "27"))
STEPS = int(os.environ.get("GREENMATRIX_CONVERGENCE_STEPS", "56"))
# Marks the nodes this module creates, so cleaning up never touches the lab's or another test's.
NODE_MARK = "greenmatrix.io/convergence-test"
WP_NAMES = [f"conv-wp-{i}" for i in range(7)]
OP_NAMES = [f"conv-policy-{c}" for c in "abcd"]
NODE_NAMES = [f"gm-conv-{i}" for i in range(5)]

TEAMS = ["chat", "search", "batch"]  # what selectors name; profiles may also be in "research"
TIERS = ["interactive", "offline"]
REGIONS = ["us-east-1", "europe-west4", "us-west-2"]
# (product label, gpu.memory MiB, GPUs per node); Z9000 is unknown to the catalog: specs may name
# it only while a node carries it, so its nodes coming and going flips profiles' validity.
PRODUCTS = [
    ("NVIDIA-L4", "23034", 1),
    ("NVIDIA-L40S", "46068", 4),
    ("NVIDIA-H100-80GB-HBM3", "81559", 8),
    ("NVIDIA-A100-SXM4-80GB", "81920", 4),
    ("NVIDIA-H200", "143771", 8),
    ("NVIDIA-A10G", "23028", 4),
    ("NVIDIA-Z9000", "65536", 2),
]
GPU_NAMES = ["NVIDIA-L4", "H100-SXM-80GB", "A100-SXM4-80GB", "L40S", "H200-SXM-141GB", "NVIDIA-Z9000"]
MODELS = [
    "meta-llama/Llama-3.1-8B-Instruct",
    "meta-llama/Llama-3.1-70B-Instruct",
    "Qwen/Qwen3-0.6B",
    "Qwen/Qwen3-8B",
    "Qwen/Qwen3-30B-A3B",
]
TYPO_MODEL = "meta-llama/Llama-3.1-8B-Instrukt"
OBJECTIVES = ["latency", "throughput", "cost", "energy", "carbon"]

QUEUE_DEPTH = "greenmatrix_operator_queue_depth"
IN_PROGRESS = "greenmatrix_operator_queue_in_progress"
ACTIVITY = (
    'greenmatrix_operator_reconciles_total{kind="WorkloadProfile"}',
    'greenmatrix_operator_reconciles_total{kind="OptimizationPolicy"}',
    "greenmatrix_operator_node_changes_total",
)


# --- changes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One user or cluster action, as data: the same change can be applied in another order."""

    kind: str  # "wp", "op" or "node"
    verb: str  # create, merge, replace, delete, label, cordon, uncordon
    name: str
    body: Any = None
    wait: bool = True  # deletes and node creations: whether kubectl waits for them

    def __str__(self) -> str:
        body = "" if self.body is None else " " + json.dumps(self.body, sort_keys=True)
        return f"{self.verb} {self.kind} {self.name}{'' if self.wait else ' (no wait)'}{body}"


RESOURCES = {"wp": "workloadprofile", "op": "optimizationpolicy"}
KINDS = {"wp": "WorkloadProfile", "op": "OptimizationPolicy"}


def apply_change(lab: Lab, ns: str, change: Change) -> None:
    if change.kind == "node":
        _apply_node_change(lab, change)
        return
    resource = RESOURCES[change.kind]
    if change.verb == "create":
        manifest = {"apiVersion": f"{GROUP}/{VERSION}", "kind": KINDS[change.kind], **change.body}
        manifest["metadata"] = {**manifest["metadata"], "name": change.name}
        lab.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(manifest))
    elif change.verb == "merge":
        lab.kubectl("patch", resource, change.name, "-n", ns, "--type=merge", "-p", json.dumps(change.body))
    elif change.verb == "replace":
        # JSON patch "add" replaces the member whole (a merge patch would merge into it).
        ops = [{"op": "add", "path": path, "value": value} for path, value in change.body.items()]
        lab.kubectl("patch", resource, change.name, "-n", ns, "--type=json", "-p", json.dumps(ops))
    elif change.verb == "delete":
        lab.kubectl("delete", resource, change.name, "-n", ns, f"--wait={str(change.wait).lower()}")
    else:
        raise AssertionError(f"unknown change {change}")


def _apply_node_change(lab: Lab, change: Change) -> None:
    if change.verb == "create":
        labels = {k: v for k, v in change.body[0].items() if v is not None}
        gpus = change.body[1]
        allocatable = {"cpu": "96", "memory": "1000Gi", "pods": "110", "nvidia.com/gpu": str(gpus)}
        lab.add_node(change.name, {**labels, NODE_MARK: "true"}, allocatable, wait=change.wait)
    elif change.verb == "label":
        pairs = [f"{k}={v}" if v is not None else f"{k}-" for k, v in change.body.items()]
        lab.kubectl("label", "node", change.name, "--overwrite", *pairs)
    elif change.verb in ("cordon", "uncordon"):
        lab.kubectl(change.verb, change.name)
    elif change.verb == "delete":
        lab.kubectl("delete", "node", change.name, f"--wait={str(change.wait).lower()}")
    else:
        raise AssertionError(f"unknown change {change}")


def _gpu_labels(product: tuple[str, str, int], region: str | None) -> dict[str, str | None]:
    name, memory, count = product
    labels: dict[str, str | None] = {
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": name,
        "nvidia.com/gpu.memory": memory,
        "nvidia.com/gpu.count": str(count),
        "feature.node.kubernetes.io/cpu-model.vendor_id": "AMD",
        "topology.kubernetes.io/region": region,
    }
    return labels


def _workload_labels(rng: random.Random) -> dict[str, str]:
    labels = {}
    if rng.random() < 0.75:
        labels["team"] = rng.choice([*TEAMS, "research"])
    if rng.random() < 0.5:
        labels["tier"] = rng.choice(TIERS)
    return labels


def _hardware(rng: random.Random) -> dict[str, Any]:
    hw: dict[str, Any] = {}
    pick = rng.random()
    if pick < 0.35:
        hw["allowedGpus"] = rng.sample(GPU_NAMES, rng.randint(1, 3))
    elif pick < 0.55:
        hw["excludedGpus"] = rng.sample(GPU_NAMES[:-1], rng.randint(1, 2))
    if rng.random() < 0.3:
        hw["regions"] = rng.sample(REGIONS, rng.randint(1, 2))
    if rng.random() < 0.3:
        hw["allowCpu"] = False
    if rng.random() < 0.3:
        low = rng.choice([1, 2])
        hw["minGpusPerReplica"] = low
        hw["maxGpusPerReplica"] = rng.choice([n for n in (1, 2, 4, 8) if n >= low])
    return hw or {"allowCpu": True}


def _workload_spec(rng: random.Random) -> dict[str, Any]:
    if rng.random() < 0.15:
        return {
            "task": "training",
            "model": {
                "name": "meta-llama/Llama-3.1-8B-Instruct",
                "precision": "bf16",
                "framework": "pytorch",
            },
            "training": {
                "tokens": rng.choice([1e8, 2e9]),
                "sequenceLength": 4096,
                "globalBatchSize": 64,
                "deadlineHours": rng.choice([2, 24, 200]),
            },
        }
    model = TYPO_MODEL if rng.random() < 0.07 else rng.choice(MODELS)
    spec: dict[str, Any] = {
        "task": "inference",
        "model": {"name": model, "precision": rng.choice(["bf16", "fp8", "int8"])},
        "inference": {
            "inputTokens": rng.choice([256, 1024, 4096]),
            "outputTokens": rng.choice([64, 256]),
            "concurrency": rng.choice([4, 16, 64]),
            "requestsPerSecond": rng.choice([1, 5, 20]),
        },
    }
    slo = {}
    if rng.random() < 0.6:
        slo["tpotMs"] = rng.choice([0.5, 15, 40, 100])  # 0.5 ms: nothing can meet it
    if rng.random() < 0.4:
        slo["ttftMs"] = rng.choice([100, 500, 3000])
    if slo:
        spec["inference"]["slo"] = slo
    if rng.random() < 0.5:
        spec["hardware"] = _hardware(rng)
    return spec


def _selector(rng: random.Random) -> dict[str, Any]:
    pick = rng.random()
    if pick < 0.08:
        return {}
    if pick < 0.7:
        return {"matchLabels": {"team": rng.choice(TEAMS)}}
    return {
        "matchExpressions": [
            rng.choice(
                [
                    {"key": "tier", "operator": "Exists"},
                    {"key": "team", "operator": "In", "values": sorted(rng.sample(TEAMS, 2))},
                    {"key": "team", "operator": "NotIn", "values": [rng.choice(TEAMS)]},
                ]
            )
        ]
    }


def _objectives(rng: random.Random) -> dict[str, float]:
    weights = {k: rng.choice([0, 0, 0.2, 0.5, 1]) for k in OBJECTIVES}
    if not any(weights.values()):
        weights["cost"] = 1
    return weights


def _constraints(rng: random.Random) -> dict[str, Any]:
    constraints: dict[str, Any] = {}
    if rng.random() < 0.35:
        constraints["regions"] = rng.sample(REGIONS, rng.randint(1, 2))
    if rng.random() < 0.3:
        constraints["allowedGpus"] = rng.sample(GPU_NAMES, rng.randint(1, 3))
    if rng.random() < 0.2:
        constraints["maxCostPerHour"] = rng.choice([5, 50, 500])
    return constraints


def _policy_spec(rng: random.Random) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": _selector(rng),
        "priority": rng.choice([-5, 0, 0, 5, 10]),
        "objectives": _objectives(rng),
    }
    if constraints := _constraints(rng):
        spec["constraints"] = constraints
    if rng.random() < 0.3:
        spec["scaling"] = {"minReplicas": rng.choice([1, 2]), "maxReplicas": rng.choice([2, 4, 10])}
    return spec


@dataclass
class World:
    """What exists after the changes so far: enough to only generate changes the API server accepts."""

    workloads: dict[str, str] = field(default_factory=dict)  # name -> task
    policies: set[str] = field(default_factory=set)
    nodes: dict[str, bool] = field(default_factory=dict)  # name -> cordoned
    deleted_policies: set[str] = field(default_factory=set)


def _new_profile(name: str, labels: dict[str, str], **spec: Any) -> Change:
    """Creating inference WorkloadProfile `name` with these labels and the rest of its spec."""
    return Change(
        "wp", "create", name, {"metadata": {"labels": labels}, "spec": {"task": "inference", **spec}}
    )


def _new_policy(name: str, **spec: Any) -> Change:
    return Change("op", "create", name, {"metadata": {}, "spec": spec})


def _new_or_existing(
    rng: random.Random, names: Sequence[str], existing: Collection[str], new_share: float
) -> tuple[str, float, bool]:
    """The name to change, the draw that chooses the change, and whether the object is new: a free
    name when nothing exists yet or, while names are free, with probability `new_share`."""
    free = [n for n in names if n not in existing]
    taken = sorted(existing)
    pick = rng.random()
    if not taken or (free and pick < new_share):
        return rng.choice(free), pick, True
    return rng.choice(taken), pick, False


def _workload_change(rng: random.Random, world: World) -> list[Change]:
    name, pick, new = _new_or_existing(rng, WP_NAMES, world.workloads, 0.3)
    if new:
        spec = _workload_spec(rng)
        world.workloads[name] = spec["task"]
        return [Change("wp", "create", name, {"metadata": {"labels": _workload_labels(rng)}, "spec": spec})]
    if pick < 0.5:
        labels: dict[str, str | None] = {"team": rng.choice([*TEAMS, "research", None])}
        if rng.random() < 0.4:
            labels["tier"] = rng.choice([*TIERS, None])
        return [Change("wp", "merge", name, {"metadata": {"labels": labels}})]
    if pick < 0.65:
        spec = _workload_spec(rng)
        world.workloads[name] = spec["task"]
        return [Change("wp", "replace", name, {"/spec": spec})]
    if pick < 0.8:
        if world.workloads[name] == "training":
            return [
                Change("wp", "merge", name, {"spec": {"training": {"deadlineHours": rng.choice([1, 48])}}})
            ]
        piece = rng.choice(
            [
                {"inference": {"slo": {"tpotMs": rng.choice([0.5, 20, 60])}}},
                {"inference": {"slo": None}},
                {"inference": {"requestsPerSecond": rng.choice([2, 50])}},
                {"model": {"precision": rng.choice(["bf16", "fp8"])}},
                {"hardware": None},
            ]
        )
        return [Change("wp", "merge", name, {"spec": piece})]
    if pick < 0.9:
        del world.workloads[name]
        return [Change("wp", "delete", name, wait=rng.random() < 0.5)]
    # Deleted and created again at once under the same name, with another spec.
    spec = _workload_spec(rng)
    world.workloads[name] = spec["task"]
    return [
        Change("wp", "delete", name, wait=False),
        Change("wp", "create", name, {"metadata": {"labels": _workload_labels(rng)}, "spec": spec}),
    ]


def _policy_change(rng: random.Random, world: World) -> list[Change]:
    name, pick, new = _new_or_existing(rng, OP_NAMES, world.policies, 0.3)
    if new:
        world.policies.add(name)
        world.deleted_policies.discard(name)
        return [_new_policy(name, **_policy_spec(rng))]
    if pick < 0.4:
        return [Change("op", "merge", name, {"spec": {"priority": rng.choice([-5, 0, 5, 10, 20])}})]
    if pick < 0.52:
        return [Change("op", "replace", name, {"/spec/selector": _selector(rng)})]
    if pick < 0.6:
        return [Change("op", "replace", name, {"/spec/objectives": _objectives(rng)})]
    if pick < 0.7:
        constraints = _constraints(rng)
        if constraints:
            return [Change("op", "replace", name, {"/spec/constraints": constraints})]
        return [Change("op", "merge", name, {"spec": {"constraints": None}})]
    if pick < 0.88:
        world.policies.discard(name)
        world.deleted_policies.add(name)
        return [Change("op", "delete", name, wait=rng.random() < 0.5)]
    return [
        Change("op", "delete", name, wait=False),
        _new_policy(name, **_policy_spec(rng)),
    ]


def _node_change(rng: random.Random, world: World) -> list[Change]:
    name, pick, new = _new_or_existing(rng, NODE_NAMES, world.nodes, 0.35)
    if new:
        world.nodes[name] = False
        product = rng.choice(PRODUCTS)
        labels = {k: v for k, v in _gpu_labels(product, rng.choice(REGIONS)).items() if v is not None}
        return [Change("node", "create", name, (labels, product[2]), wait=rng.random() < 0.5)]
    if pick < 0.6:
        labels: dict[str, str | None] = {}
        if rng.random() < 0.1:
            # GFD gone: the device plugin's GPUs remain, of an unknown product.
            labels["nvidia.com/gpu.product"] = labels["nvidia.com/gpu.memory"] = None
        elif rng.random() < 0.7:
            product = rng.choice(PRODUCTS)
            labels["nvidia.com/gpu.product"] = product[0]
            labels["nvidia.com/gpu.memory"] = product[1]
        if not labels or rng.random() < 0.5:
            labels["topology.kubernetes.io/region"] = rng.choice([*REGIONS, None])
        return [Change("node", "label", name, labels)]
    if pick < 0.72:
        cordoned = world.nodes[name] = not world.nodes[name]
        return [Change("node", "cordon" if cordoned else "uncordon", name)]
    del world.nodes[name]
    return [Change("node", "delete", name, wait=rng.random() < 0.5)]


@dataclass(frozen=True)
class Step:
    changes: tuple[Change, ...]
    pause: str  # "burst": none; "short": up to a second; "settle": until the operator is quiet
    seconds: float = 0.0

    def __str__(self) -> str:
        after = {"burst": "", "short": f"; sleep {self.seconds:.2f}s", "settle": "; settle"}[self.pause]
        return " + ".join(str(c) for c in self.changes) + after


def random_steps(seed: int, count: int) -> tuple[list[Step], World]:
    """A reproducible sequence of changes, and what exists at its end."""
    rng = random.Random(seed)
    world = World()
    steps = []
    for _ in range(count):
        kind = rng.choices(["wp", "op", "node"], weights=[4, 3, 3])[0]
        generator = {"wp": _workload_change, "op": _policy_change, "node": _node_change}[kind]
        changes = generator(rng, world)
        pause = rng.choices(["burst", "short", "settle"], weights=[5, 4, 2])[0]
        steps.append(Step(tuple(changes), pause, rng.uniform(0.05, 1.0) if pause == "short" else 0.0))
    return steps, world


# --- the operator at rest ------------------------------------------------------------------------


def wait_quiet(operator: RunningOperator, settle: float = 1.0, timeout: float = 180) -> None:
    """Wait until the work queue is empty, nothing is being reconciled, and no reconcile, node change
    or scheduled retry happened for `settle` seconds (longer than Kopf's batching and the debounce)."""
    deadline = time.monotonic() + timeout
    quiet_since: float | None = None
    last: tuple[float, ...] | None = None
    while True:
        if not operator.alive():
            pytest.fail(f"the operator exited:\n{operator.log_text()[-4000:]}")
        samples = operator.metrics()
        now = time.monotonic()
        busy = samples[QUEUE_DEPTH] > 0 or samples[IN_PROGRESS] > 0
        activity = tuple(samples[name] for name in ACTIVITY)
        if busy or activity != last:
            quiet_since, last = (None if busy else now), (None if busy else activity)
        elif quiet_since is not None and now - quiet_since >= settle:
            return
        if now > deadline:
            pytest.fail(f"the operator never went quiet in {timeout:.0f}s (queue {samples[QUEUE_DEPTH]:.0f})")
        time.sleep(0.2)


def _our_nodes_ready(lab: Lab) -> bool:
    """Whether kwok has made every node this module created Ready (some are created without waiting)."""
    nodes = get_json(lab, "nodes", "-l", NODE_MARK)["items"]
    return all(
        any(c["type"] == "Ready" and c["status"] == "True" for c in n.get("status", {}).get("conditions", []))
        for n in nodes
    )


@dataclass(frozen=True)
class Snapshot:
    nodes: tuple[NodeHardware, ...]
    workloads: tuple[dict[str, Any], ...]
    policies: tuple[dict[str, Any], ...]


def _read_nodes(lab: Lab) -> tuple[NodeHardware, ...]:
    # The same conversion as the operator's node index.
    return tuple(
        node_hardware(
            n["metadata"]["name"],
            n["metadata"].get("labels") or {},
            n.get("spec") or {},
            n.get("status") or {},
        )
        for n in get_json(lab, "nodes")["items"]
    )


def snapshot(lab: Lab, ns: str) -> Snapshot:
    """The final state, read while no node changed (the lab is shared with other sessions)."""
    for _ in range(5):
        before = _read_nodes(lab)
        workloads = tuple(get_json(lab, "workloadprofiles", "-n", ns)["items"])
        policies = tuple(get_json(lab, "optimizationpolicies", "-n", ns)["items"])
        if sorted(_read_nodes(lab), key=lambda n: n.name) == sorted(before, key=lambda n: n.name):
            return Snapshot(before, workloads, policies)
        time.sleep(2)
    pytest.fail("nodes kept changing under a concurrent session; no stable state to compare with")


# --- what a fresh evaluation says ----------------------------------------------------------------


def _timeless(status: Mapping[str, Any]) -> dict[str, Any]:
    """A status without the conditions' lastTransitionTime: when a condition last flipped depends on
    the history (the times of the changes), not on the final state; every other field must not."""
    out = dict(status)
    if "conditions" in out:
        out["conditions"] = [
            {k: v for k, v in c.items() if k != "lastTransitionTime"} for c in out["conditions"]
        ]
    return out


def expected_workload_status(
    obj: Mapping[str, Any], nodes: Sequence[NodeHardware], policies: Sequence[Any], planner: Planner
) -> dict[str, Any]:
    """The status the operator's evaluation gives this profile now, laid out as the reconciler does."""
    generation = obj["metadata"]["generation"]
    policy = applied_policy(policies, obj["metadata"].get("labels") or {})
    evaluation = evaluate_workload(obj.get("spec") or {}, nodes, policy, planner=planner)
    return _timeless(status_of(evaluation, generation, None, ""))


def expected_policy_status(obj: Mapping[str, Any], snap: Snapshot, policies: Sequence[Any]) -> dict[str, Any]:
    generation = obj["metadata"]["generation"]
    evaluation = evaluate_policy(
        obj["metadata"]["name"],
        obj.get("spec") or {},
        [(w["metadata"]["name"], w["metadata"].get("labels") or {}) for w in snap.workloads],
        policies,
        unknown_products(snap.nodes),
    )
    return _timeless(status_of(evaluation, generation, None, ""))


def _headline(status: Mapping[str, Any]) -> tuple[Any, ...]:
    rec = status.get("recommendation") or {}
    ready = next((c for c in status.get("conditions") or () if c["type"] == READY), {})
    return (
        rec.get("gpu"),
        rec.get("gpusPerReplica"),
        rec.get("replicas"),
        status.get("appliedPolicy"),
        ready.get("reason"),
    )


def _diff(
    actual: Any, expected: Any, path: str = "", names: tuple[str, str] = ("operator", "expected")
) -> str:
    """Where two statuses differ, leaf by leaf (paths like recommendation.predicted.watts)."""
    if isinstance(actual, Mapping) and isinstance(expected, Mapping):
        keys = sorted({*actual, *expected})
        return "".join(_diff(actual.get(k), expected.get(k), f"{path}.{k}", names) for k in keys)
    if isinstance(actual, list) and isinstance(expected, list) and len(actual) == len(expected):
        pairs = enumerate(zip(actual, expected, strict=True))
        return "".join(_diff(a, e, f"{path}[{i}]", names) for i, (a, e) in pairs)
    if actual == expected:
        return ""
    return f"    {path[1:]}: {names[0]} {json.dumps(actual)[:300]}, {names[1]} {json.dumps(expected)[:300]}\n"


def timeless_statuses(snap: Snapshot) -> dict[str, dict[str, Any]]:
    """Each object's status without times, keyed wp/NAME and op/NAME."""
    out = {f"wp/{w['metadata']['name']}": _timeless(w.get("status") or {}) for w in snap.workloads}
    out.update({f"op/{p['metadata']['name']}": _timeless(p.get("status") or {}) for p in snap.policies})
    return out


def invariant_problems(snap: Snapshot, policy_names: Iterable[str]) -> list[str]:
    """What must hold whatever the plans say: every profile has a status for its generation, names
    only a policy that exists and selects it, and says so when no policy selects it."""
    problems: list[str] = []
    views = parse_policies((p["metadata"]["name"], p.get("spec") or {}) for p in snap.policies)
    existing_policies = {p["metadata"]["name"] for p in snap.policies}
    statuses = timeless_statuses(snap)
    for obj in snap.workloads:
        name, generation = obj["metadata"]["name"], obj["metadata"]["generation"]
        labels = obj["metadata"].get("labels") or {}
        status = obj.get("status") or {}
        if not status:
            problems.append(f"wp/{name}: no status at all")
            continue
        ready = next((c for c in status.get("conditions") or () if c["type"] == READY), {})
        if (status.get("observedGeneration"), ready.get("observedGeneration")) != (generation, generation):
            problems.append(
                f"wp/{name}: generation {generation} but status.observedGeneration"
                f" {status.get('observedGeneration')}, Ready's {ready.get('observedGeneration')}"
            )
        applied = status.get("appliedPolicy")
        if applied is not None and applied not in existing_policies:
            problems.append(f"wp/{name}: appliedPolicy {applied} does not exist")
        winner = applied_policy(views, labels)
        if winner is not None and applied is None:
            problems.append(f"wp/{name}: {winner.name} selects it but the status names no policy")
        if winner is None:
            listed = [
                k
                for k, s in statuses.items()
                if k.startswith("op/") and name in s.get("selectedWorkloads", [])
            ]
            if applied is not None or listed:
                problems.append(f"wp/{name}: selected by no policy, yet its status or {listed} say otherwise")
    everything = json.dumps(statuses)
    for gone in sorted(set(policy_names) - existing_policies):
        if re.search(rf"\b{re.escape(gone)}\b", everything):
            problems.append(f"the deleted policy {gone} is still named in a status")
    return problems


def evaluation_problems(snap: Snapshot, planner: Planner) -> list[str]:
    """Every way the statuses differ from what the operator's evaluation gives the snapshot now."""
    problems: list[str] = []
    views = parse_policies((p["metadata"]["name"], p.get("spec") or {}) for p in snap.policies)
    for obj in snap.workloads:
        name = obj["metadata"]["name"]
        actual = _timeless(obj.get("status") or {})
        expected = expected_workload_status(obj, snap.nodes, views, planner)
        if _headline(actual) != _headline(expected):
            problems.append(
                f"wp/{name}: (gpu, gpusPerReplica, replicas, appliedPolicy, Ready reason) is"
                f" {_headline(actual)}, a fresh evaluation gives {_headline(expected)}"
            )
        if actual != expected:
            problems.append(f"wp/{name}: status differs from a fresh evaluation:\n{_diff(actual, expected)}")
    for obj in snap.policies:
        actual = _timeless(obj.get("status") or {})
        expected = expected_policy_status(obj, snap, views)
        if actual != expected:
            name = obj["metadata"]["name"]
            problems.append(f"op/{name}: status differs from a fresh evaluation:\n{_diff(actual, expected)}")
    return problems


def _log_problems(operator: RunningOperator, since: int) -> list[str]:
    log = operator.log_text()[since:]
    problems = [] if operator.alive() else ["the operator exited"]
    if "Traceback" in log or " ERROR " in log:
        problems.append(f"the operator logged an error:\n{log[-4000:]}")
    return problems


# --- fixtures ------------------------------------------------------------------------------------


def _clean(lab: Lab, ns: str) -> None:
    lab.kubectl("delete", "workloadprofiles,optimizationpolicies", "--all", "-n", ns, "--wait=true")
    lab.kubectl("delete", "nodes", "-l", NODE_MARK, "--wait=true")


@pytest.fixture(scope="module")
def ns(gm_operator: RunningOperator, lab: Lab) -> Iterator[str]:
    """The operator's namespace, emptied of profiles and policies (policies select namespace-wide)."""
    _clean(lab, gm_operator.namespace)
    wait_quiet(gm_operator)
    yield gm_operator.namespace
    _clean(lab, gm_operator.namespace)


@pytest.fixture(scope="module")
def planner() -> Planner:
    """The planner over the same models as the operator subprocess loads."""
    return planner_for(Predictors.load())


def check_converged(
    lab: Lab,
    ns: str,
    operator: RunningOperator,
    planner: Planner | None,
    policy_names: Iterable[str],
    log_from: int,
    story: str,
) -> Snapshot:
    """Wait until the operator is quiet, then fail unless the invariants hold and (with a planner)
    every status is a fresh evaluation of the state."""
    wait_until(lambda: _our_nodes_ready(lab), 60, "the test's nodes to be Ready")
    wait_quiet(operator)
    snap = snapshot(lab, ns)
    problems = invariant_problems(snap, policy_names)
    if planner is not None:
        problems += evaluation_problems(snap, planner)
    problems += _log_problems(operator, log_from)
    if problems:
        pytest.fail("not converged:\n" + "\n".join(problems) + f"\n\nafter these changes:\n{story}")
    return snap


def run_steps(
    lab: Lab, ns: str, operator: RunningOperator, planner: Planner, steps: Sequence[Step], log_from: int
) -> int:
    """Apply the steps; at each "settle" the operator must be quiet and converged. Returns the checks."""
    checks = 0
    for i, step in enumerate(steps):
        for change in step.changes:
            apply_change(lab, ns, change)
        if step.pause == "short":
            time.sleep(step.seconds)
        elif step.pause == "settle":
            story = "\n".join(f"  {j:2d}. {s}" for j, s in enumerate(steps[: i + 1]))
            check_converged(lab, ns, operator, planner, OP_NAMES, log_from, story)
            checks += 1
    return checks


# --- tests ---------------------------------------------------------------------------------------


def test_any_sequence_of_changes_converges_to_a_fresh_evaluation(
    lab: Lab, gm_operator: RunningOperator, ns: str, planner: Planner
) -> None:
    steps, world = random_steps(SEED, STEPS)
    story = "\n".join(f"  {i:2d}. {step}" for i, step in enumerate(steps))
    log_from = len(gm_operator.log_text())
    started = time.monotonic()
    checks = run_steps(lab, ns, gm_operator, planner, steps, log_from)
    snap = check_converged(lab, ns, gm_operator, planner, OP_NAMES, log_from, story)
    statuses = timeless_statuses(snap)
    took = time.monotonic() - started
    print(
        f"\n[convergence] seed {SEED}: {len(steps)} steps, {checks + 1} checks of every status, {took:.1f}s"
    )

    # The checks above must have had something to bite on in the final state; if a change to the
    # generator makes these fail, choose another SEED.
    names = {w["metadata"]["name"] for w in snap.workloads}
    assert names == set(world.workloads), "the world model drifted from the API server"
    assert {p["metadata"]["name"] for p in snap.policies} == world.policies
    with_policy = [k for k, s in statuses.items() if k.startswith("wp/") and "appliedPolicy" in s]
    without = [k for k, s in statuses.items() if k.startswith("wp/") and "appliedPolicy" not in s]
    recommended = [k for k, s in statuses.items() if s.get("recommendation")]
    coverage = (
        f"seed {SEED}: profiles with a policy {with_policy}, without {without}, recommended {recommended}"
    )
    assert with_policy and without and recommended, coverage
    assert world.deleted_policies - world.policies, f"seed {SEED}: no policy stayed deleted"
    assert world.nodes, f"seed {SEED}: none of the test's nodes is left"


# Each object's changes, in their own order; the two runs order the objects differently.
USER_CHAINS: list[list[Change]] = [
    [
        _new_profile(
            "order-chat",
            {"team": "chat"},
            model={"name": "meta-llama/Llama-3.1-8B-Instruct"},
            inference={"concurrency": 32, "requestsPerSecond": 20, "slo": {"tpotMs": 40}},
        ),
        Change("wp", "merge", "order-chat", {"metadata": {"labels": {"team": "batch"}}}),
        Change("wp", "merge", "order-chat", {"spec": {"inference": {"slo": {"ttftMs": 800}}}}),
    ],
    [
        _new_profile(
            "order-big",
            {"team": "chat", "tier": "offline"},
            model={"name": "meta-llama/Llama-3.1-70B-Instruct", "precision": "fp8"},
            inference={"requestsPerSecond": 8},
            hardware={"minGpusPerReplica": 2},
        ),
        Change("wp", "delete", "order-big", wait=False),
        _new_profile(
            "order-big",
            {"tier": "offline"},
            model={"name": "Qwen/Qwen3-30B-A3B"},
            inference={"requestsPerSecond": 4},
            hardware={"allowedGpus": ["NVIDIA-Z9000", "NVIDIA-L4", "L40S"]},
        ),
    ],
    [
        _new_profile(
            "order-small",
            {"team": "search"},
            model={"name": "Qwen/Qwen3-0.6B", "precision": "int8"},
            inference={"concurrency": 4, "requestsPerSecond": 2},
        ),
    ],
    [
        _new_policy(
            "order-latency",
            selector={"matchLabels": {"team": "chat"}},
            priority=10,
            objectives={"latency": 1, "cost": 0},
            constraints={"regions": ["us-east-1"]},
        ),
        Change("op", "replace", "order-latency", {"/spec/selector": {"matchLabels": {"team": "batch"}}}),
    ],
    [
        _new_policy(
            "order-cheap",
            selector={"matchExpressions": [{"key": "tier", "operator": "Exists"}]},
            priority=5,
            objectives={"latency": 0, "cost": 1},
            constraints={"allowedGpus": ["NVIDIA-Z9000", "L40S", "H200-SXM-141GB"]},
        ),
    ],
]
NODE_CHAINS: list[list[Change]] = [
    [
        Change("node", "create", "gm-conv-o1", (_gpu_labels(PRODUCTS[1], "us-east-1"), 4)),
        Change("node", "label", "gm-conv-o1", {"nvidia.com/gpu.product": "NVIDIA-H200"}),
    ],
    [
        Change("node", "create", "gm-conv-o3", (_gpu_labels(PRODUCTS[6], "us-west-2"), 2)),
        Change("node", "cordon", "gm-conv-o3"),
        Change("node", "uncordon", "gm-conv-o3"),
    ],
]
# A namespace-wide default that comes and goes, and a node that does (never Ready: no waiting).
DEFAULT_POLICY = (
    Change("op", "create", "order-default", {"metadata": {}, "spec": {"selector": {}, "priority": 0}}),
    Change("op", "delete", "order-default", wait=False),
)
PASSING_NODE = (
    Change("node", "create", "gm-conv-o2", (_gpu_labels(PRODUCTS[5], "europe-west4"), 4), wait=False),
    Change("node", "delete", "gm-conv-o2", wait=False),
)


def interleave(chains: Sequence[Sequence[Change]], seed: int) -> list[Change]:
    """A random merge of the chains that keeps each chain's own order."""
    rng = random.Random(seed)
    cursors = [0] * len(chains)
    out: list[Change] = []
    while any(c < len(chain) for c, chain in zip(cursors, chains, strict=True)):
        i = rng.choice([i for i, chain in enumerate(chains) if cursors[i] < len(chain)])
        out.append(chains[i][cursors[i]])
        cursors[i] += 1
    return out


def test_the_same_changes_in_another_order_give_the_same_statuses(
    lab: Lab, gm_operator: RunningOperator, ns: str, planner: Planner
) -> None:
    # Each order runs as one burst but for its last change, made once the operator is quiet so that
    # nothing else can mask it: the statuses must all follow that one change. The first order makes
    # the cluster's changes, then the users', ending with a policy's deletion; the second the other
    # way round, ending with a node's deletion; the third mixes them all, ending with a spec change.
    default_create, default_delete = DEFAULT_POLICY
    node_create, node_delete = PASSING_NODE
    chat, *others = USER_CHAINS
    cluster_first = [*PASSING_NODE, *interleave(NODE_CHAINS, 1), default_create]
    cluster_first += [*interleave(USER_CHAINS, 1), default_delete]
    users_first = [*DEFAULT_POLICY, *interleave(USER_CHAINS, 2)]
    users_first += [node_create, *interleave(NODE_CHAINS, 2), node_delete]
    mixed = interleave([chat[:-1], *others, *NODE_CHAINS, DEFAULT_POLICY, PASSING_NODE], 3) + chat[-1:]
    assert chat[-1].kind == "wp" and chat[-1].body.keys() == {"spec"}
    policy_names = [default_create.name, *(chain[0].name for chain in USER_CHAINS if chain[0].kind == "op")]
    snaps = []
    for order in (cluster_first, users_first, mixed):
        _clean(lab, ns)
        wait_quiet(gm_operator)
        log_from = len(gm_operator.log_text())
        for change in order[:-1]:
            apply_change(lab, ns, change)
        wait_quiet(gm_operator)
        apply_change(lab, ns, order[-1])
        story = "\n".join(f"  {i:2d}. {c}" for i, c in enumerate(order))
        snaps.append(check_converged(lab, ns, gm_operator, None, policy_names, log_from, story))
    first, *others_statuses = (timeless_statuses(snap) for snap in snaps)
    for n, other in enumerate(others_statuses, 2):
        assert sorted(first) == sorted(other)
        for key in sorted(first):
            diff = _diff(first[key], other[key], names=("order 1", f"order {n}"))
            assert first[key] == other[key], f"{key} differs between the orders:\n{diff}"
    # Equal, and right: all are what a fresh evaluation of the final state gives.
    problems = evaluation_problems(snaps[-1], planner)
    assert not problems, "\n".join(problems)
