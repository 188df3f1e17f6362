"""Fuzz through the real API server: 1,200 generated odd or malformed WorkloadProfiles and policies.
Each is either refused at admission with an answer naming a `spec` field, or accepted and then given a
status by the operator that either recommends or names the field (InvalidSpec) or the hardware it
lacks. The operator never crashes and its memory stays flat over the run."""

from __future__ import annotations

import copy
import random
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from greenmatrix_lab import Lab
from operator_helpers import RunningOperator, wait_until

pytest_plugins = ["operator_fixtures"]

NAMESPACE = f"gm-fuzz-{secrets.token_hex(3)}"
COUNT = 1200
BATCH = 100
GROUP, VERSION = "greenmatrix.io", "v1alpha1"

WORKLOAD: dict[str, Any] = {
    "task": "inference",
    "model": {"name": "meta-llama/Llama-3.1-8B-Instruct", "precision": "bf16", "framework": "vllm"},
    "inference": {"inputTokens": 1024, "outputTokens": 256, "concurrency": 16, "slo": {"tpotMs": 50}},
}
POLICY: dict[str, Any] = {
    "selector": {"matchLabels": {"fuzz": "yes"}},
    "objectives": {"latency": 1, "cost": 1},
    "scaling": {"minReplicas": 1, "maxReplicas": 4, "cooldown": "5m"},
}
# Odd values of every JSON type, and strings that look like numbers, durations or names.
ODD = [
    None, 0, -1, 1, 2**31, 2**53, -(2**40), 1e300, -1e-300, 0.5, "", " ", "0", "-1", "1e9", "NaN", "Infinity",
    "5m", "-5m", "1y", "abc", "A" * 300, "ünïcødé", "meta-llama/Llama-3.1-8B-Instruct", "H100-SXM-80GB",
    "fp8", "int4", "training", "inference", True, False, [], [1, "x"], {}, {"nested": {"deep": [None]}},
]  # fmt: skip
WORKLOAD_PATHS = [
    "task", "model", "model.name", "model.precision", "model.framework", "model.architecture",
    "model.architecture.parameters", "model.architecture.layers", "inference", "inference.inputTokens",
    "inference.outputTokens", "inference.concurrency", "inference.slo", "inference.slo.tpotMs",
    "inference.slo.ttftMs", "inference.requestsPerSecond", "training", "training.tokens",
    "hardware.allowedGpus", "targetRef", "targetRef.name", "targetRef.kind", "metrics", "metrics.requestRate",
    "unknownField",
]  # fmt: skip
POLICY_PATHS = [
    "selector", "selector.matchLabels", "priority", "objectives", "objectives.latency", "objectives.energy",
    "constraints", "constraints.maxUsdPerHour", "constraints.allowedGpus", "mode", "scaling",
    "scaling.minReplicas", "scaling.maxReplicas", "scaling.cooldown", "scaling.targetUtilization",
    "scaling.scaleDownStabilization", "evaluationInterval", "paused", "unknownField",
]  # fmt: skip


def mutated(base: dict[str, Any], paths: list[str], rng: random.Random) -> dict[str, Any]:
    """`base` with one to three fields set to odd values or removed."""
    spec = copy.deepcopy(base)
    for _ in range(rng.randint(1, 3)):
        *parents, leaf = rng.choice(paths).split(".")
        node: Any = spec
        for part in parents:
            if not isinstance(node, dict):
                break
            node = node.setdefault(part, {})
        if not isinstance(node, dict):
            continue
        if rng.random() < 0.15:
            node.pop(leaf, None)
        else:
            node[leaf] = copy.deepcopy(rng.choice(ODD))
    return spec


@pytest.fixture(scope="module")
def fuzz_operator(crds: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningOperator]:
    from operator_fixtures import running_operator

    log = tmp_path_factory.mktemp("fuzz-operator") / "operator.log"
    with running_operator(crds, NAMESPACE, log, ["--workers", "2"]) as running:
        yield running


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def verdict(obj: dict[str, Any]) -> str | None:
    """What the operator said about an accepted object, once it has: None while it has not."""
    status = obj.get("status") or {}
    if status.get("observedGeneration") != obj["metadata"]["generation"]:
        return None
    conditions = {c["type"]: c for c in status.get("conditions", [])}
    ready = conditions.get("Ready")
    if ready is None:
        return None
    if ready["status"] == "True":
        return "Ready"
    invalid = conditions.get("InvalidSpec", {})
    if invalid.get("status") == "True":
        assert "spec." in invalid["message"], invalid  # names the field
        return f"InvalidSpec:{invalid['reason']}"
    assert (
        ready["reason"] in ("NoMatchingHardware", "NoFeasibleHardware", "UnknownGpu")
        or "spec." in (ready["message"])
    ), ready
    return f"NotReady:{ready['reason']}"


def test_odd_objects_are_refused_or_reported_and_never_crash_the_operator(
    fuzz_operator: RunningOperator, lab: Lab
) -> None:
    api = kubernetes.client.CustomObjectsApi(kubernetes.config.new_client_from_config(lab.env["KUBECONFIG"]))
    rng = random.Random(20261206)
    outcomes: dict[str, int] = {}
    memory: list[float] = []
    for batch in range(COUNT // BATCH):
        created: list[tuple[str, str]] = []
        for i in range(BATCH):
            policy = rng.random() < 0.3
            plural = "optimizationpolicies" if policy else "workloadprofiles"
            kind = "OptimizationPolicy" if policy else "WorkloadProfile"
            spec = mutated(POLICY if policy else WORKLOAD, POLICY_PATHS if policy else WORKLOAD_PATHS, rng)
            name = f"f{batch}-{i}"
            body = {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": kind,
                "metadata": {"name": name, "labels": {"fuzz": "yes"}},
                "spec": spec,
            }
            try:
                api.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, plural, body)
            except kubernetes.client.ApiException as err:
                assert err.status in (400, 422), (err.status, err.body, spec)
                assert "spec" in str(err.body), (err.body, spec)  # the answer names the field
                outcomes["refused"] = outcomes.get("refused", 0) + 1
                continue
            created.append((plural, name))
        for plural, name in created:
            said = wait_until(
                lambda plural=plural, name=name: verdict(
                    api.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, plural, name)
                ),
                120,
                f"the operator's status on {plural}/{name}",
            )
            outcomes[said] = outcomes.get(said, 0) + 1
        assert fuzz_operator.alive(), fuzz_operator.log_text()[-3000:]
        for plural, name in created:
            api.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, plural, name)
        memory.append(rss_mb(fuzz_operator.process.pid))
    sys.stderr.write(f"fuzz: {COUNT} objects: {outcomes}; operator RSS by batch (MB): {memory}\n")
    assert "Traceback" not in fuzz_operator.log_text()
    assert outcomes.get("refused", 0) > 0 and sum(v for k, v in outcomes.items() if k != "refused") > 0
    # Flat: after the first batches warm the caches, the last batches hold no more than a little more.
    assert max(memory[-3:]) < max(memory[:3]) + 40, memory
