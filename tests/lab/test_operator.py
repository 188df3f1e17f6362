"""The operator's first loop on a real API server, observed through kubectl as users observe it.

`greenmatrix operator` runs as a subprocess (fixture `gm_operator`) limited to its own namespace.
The tests share the examples applied once per module; each test that changes nodes or policies
puts them back, so their order does not matter.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from greenmatrix_lab import Lab
from operator_helpers import REPO, Metrics, RunningOperator, get_json, in_a_quiet_window, wait_until

from greenmatrix.catalog import hardware

# The `crds` and `gm_operator` fixtures (a plugin, so session fixtures run once per session).
pytest_plugins = ["operator_fixtures"]

EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
INVALID = REPO / "examples" / "invalid"
CHAT_POLICY = "chat-latency-then-cost"
DEFAULT_POLICY = "green-default"


def _names(kind: str) -> list[str]:
    names = []
    for path in EXAMPLES:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == kind:
                names.append(doc["metadata"]["name"])
    return sorted(names)


WORKLOADS = _names("WorkloadProfile")
POLICIES = _names("OptimizationPolicy")


def wp(lab: Lab, ns: str, name: str) -> dict[str, Any]:
    return get_json(lab, "workloadprofile", name, "-n", ns)


def policy(lab: Lab, ns: str, name: str) -> dict[str, Any]:
    return get_json(lab, "optimizationpolicy", name, "-n", ns)


def cond(obj: dict[str, Any], type_: str = "Ready") -> dict[str, Any]:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_), {})


def gpus(obj: dict[str, Any]) -> list[str]:
    return [g["gpu"] for g in obj.get("status", {}).get("inventory", {}).get("gpus", [])]


def events(lab: Lab, ns: str, name: str) -> list[dict[str, Any]]:
    items = get_json(lab, "events", "-n", ns, "--field-selector", f"involvedObject.name={name}")["items"]
    return [e for e in items if e.get("source", {}).get("component") == "greenmatrix-operator"]


def counts_every_node(lab: Lab, ns: str, name: str) -> bool:
    """Whether the profile's inventory counts exactly the nodes the API server has right now.

    The lab is shared with other sessions that add nodes, so tests compare with the live count
    rather than remembering one.
    """
    nodes = {n["metadata"]["name"] for n in get_json(lab, "nodes")["items"]}
    return wp(lab, ns, name)["status"]["inventory"]["totalNodes"] == len(nodes)


def _not_ready(lab: Lab, ns: str, name: str, kind: str = "workloadprofile") -> dict[str, Any] | None:
    obj = get_json(lab, kind, name, "-n", ns)
    return obj if cond(obj).get("status") == "False" else None


@pytest.fixture(scope="module")
def examples(gm_operator: RunningOperator, lab: Lab) -> Iterator[str]:
    ns = gm_operator.namespace
    for path in EXAMPLES:
        lab.kubectl("apply", "-n", ns, "-f", str(path))
    yield ns
    lab.kubectl("delete", "-n", ns, "wp,op", "--all", "--wait=false", check=False)


def test_every_example_is_accepted_and_becomes_ready(lab: Lab, examples: str) -> None:
    ns = examples
    assert WORKLOADS and POLICIES
    lab.kubectl("wait", "--for=condition=Ready", "wp", "--all", "-n", ns, "--timeout=90s")
    lab.kubectl("wait", "--for=condition=Ready", "op", "--all", "-n", ns, "--timeout=90s")
    for name in WORKLOADS:
        obj = wp(lab, ns, name)
        status = obj["status"]
        assert status["observedGeneration"] == obj["metadata"]["generation"]
        ready = cond(obj)
        assert (ready["reason"], ready["observedGeneration"]) == (
            "RecommendationProvided",
            obj["metadata"]["generation"],
        )
        assert ready["lastTransitionTime"]
        assert cond(obj, "InvalidSpec")["status"] == "False"
        assert 0 < status["inventory"]["matchedNodes"] <= status["inventory"]["totalNodes"]
        wait_until(lambda name=name: counts_every_node(lab, ns, name), 30, f"{name} to count every node")
        # Ready turned True once; a policy applied after the profile may then move the
        # recommendation, which is a Normal RecommendationChanged Event, never a Warning.
        seen = events(lab, ns, name)
        assert {e["type"] for e in seen} == {"Normal"}
        assert [e["reason"] for e in seen].count("RecommendationProvided") == 1
        assert set(e["reason"] for e in seen) <= {"RecommendationProvided", "RecommendationChanged"}


def test_policies_select_apply_and_constrain(lab: Lab, examples: str) -> None:
    ns = examples
    wait_until(
        lambda: policy(lab, ns, DEFAULT_POLICY).get("status", {}).get("selectedCount") == len(WORKLOADS)
    )
    default = policy(lab, ns, DEFAULT_POLICY)["status"]
    chat = policy(lab, ns, CHAT_POLICY)["status"]
    chat_wps = sorted(
        n for n in WORKLOADS if wp(lab, ns, n)["metadata"].get("labels", {}).get("team") == "chat"
    )
    assert chat_wps, "the examples have chat-team profiles"
    assert default["selectedWorkloads"] == WORKLOADS  # empty selector: all, sorted
    assert chat["selectedWorkloads"] == chat["appliedWorkloads"] == chat_wps  # priority 10 beats 0
    assert default["appliedWorkloads"] == sorted(set(WORKLOADS) - set(chat_wps))
    assert cond(policy(lab, ns, CHAT_POLICY))["observedGeneration"] == 1
    # The chat policy restricts regions to us-east-1: the lab's A100s are in europe-west4.
    for name in chat_wps:
        assert "A100-SXM4-80GB" not in gpus(wp(lab, ns, name))
    others = [n for n in WORKLOADS if n not in chat_wps and "hardware" not in wp(lab, ns, n)["spec"]]
    assert others and all("A100-SXM4-80GB" in gpus(wp(lab, ns, n)) for n in others)


def test_restrictions_in_the_spec_shape_the_inventory(lab: Lab, examples: str) -> None:
    for name in WORKLOADS:
        obj = wp(lab, examples, name)
        allowed = obj["spec"].get("hardware", {}).get("allowedGpus")
        if allowed is None:
            continue
        keys = {hardware.normalize_gpu_name(a) for a in allowed}
        assert gpus(obj) and set(gpus(obj)) <= keys
        if not obj["spec"]["hardware"].get("allowCpu", True):
            assert not obj["status"]["inventory"].get("cpus")


def test_most_capable_gpu_is_listed_first(lab: Lab, examples: str) -> None:
    entries = wp(lab, examples, "llama-8b-finetune")["status"]["inventory"]["gpus"]
    known = [g["gpu"] for g in entries if g["known"]]
    bandwidth = [hardware.gpu(g).memory_bandwidth_gbs for g in known]
    assert len(known) >= 2 and bandwidth == sorted(bandwidth, reverse=True)
    # Products the catalog does not know come after every known one.
    assert [g["known"] for g in entries] == sorted((g["known"] for g in entries), reverse=True)


def test_kubectl_get_prints_the_columns(lab: Lab, examples: str) -> None:
    out = lab.kubectl("get", "wp", "-A").stdout
    header = out.splitlines()[0].split()
    for column in ("NAMESPACE", "NAME", "TASK", "MODEL", "GPU", "READY", "AGE"):
        assert column in header
    row = next(line for line in out.splitlines() if " llama-8b-chat " in line)
    assert "inference" in row and "meta-llama/Llama-3.1-8B-Instruct" in row and "True" in row
    wide = lab.kubectl("get", "wp", "-n", examples, "-o", "wide").stdout
    assert "REASON" in wide.splitlines()[0] and "RecommendationProvided" in wide
    policies = lab.kubectl("get", "op", "-n", examples).stdout
    assert {"SELECTED", "APPLIED"} <= set(policies.splitlines()[0].split())


def test_kopf_writes_nothing_into_users_objects(lab: Lab, examples: str) -> None:
    for name in WORKLOADS:
        obj = wp(lab, examples, name)
        meta = obj["metadata"]
        assert not [k for k in meta.get("annotations", {}) if "kopf" in k]
        assert not meta.get("finalizers")
        assert "kopf" not in obj["status"]
        assert meta["generation"] == 1  # the spec was never written


def test_unchanged_inputs_cause_no_status_write(
    lab: Lab, gm_operator: RunningOperator, examples: str
) -> None:
    name = "llama-8b-chat"
    lab.kubectl("wait", "--for=condition=Ready", f"wp/{name}", "-n", examples, "--timeout=60s")
    reconciles = 'greenmatrix_operator_reconciles_total{kind="WorkloadProfile"}'
    writes = 'greenmatrix_operator_status_writes_total{kind="WorkloadProfile"}'

    def touch(attempt: int) -> tuple[Metrics, Metrics, dict[str, Any]]:
        before = gm_operator.metrics()
        before_status = wp(lab, examples, name)["status"]
        # A label no policy looks at: the profile and its namespace's policies are reconciled again.
        lab.kubectl("label", "wp", name, "-n", examples, f"e2e-touch={attempt}", "--overwrite")
        wait_until(lambda: gm_operator.metrics()[reconciles] > before[reconciles], what="a reconcile")
        wait_until(
            lambda: gm_operator.metrics()["greenmatrix_operator_queue_depth"] == 0, what="an idle queue"
        )
        return before, gm_operator.metrics(), before_status

    before, after, before_status = in_a_quiet_window(5, touch)
    assert after[writes] == before[writes]
    assert wp(lab, examples, name)["status"] == before_status
    lab.kubectl("label", "wp", name, "-n", examples, "e2e-touch-")


def test_nonsense_specs_are_not_ready_with_a_reason_and_a_warning(
    lab: Lab, gm_operator: RunningOperator, examples: str
) -> None:
    ns = examples
    expected = {
        "typo-model": ("UnknownModel", "spec.model.name", "meta-llama/Llama-3.1-8B-Instruct"),
        "imaginary-gpu": ("UnknownHardware", "spec.hardware.allowedGpus[0]", "NVIDIA-Z9000"),
        "h100-in-tokyo": ("NoMatchingHardware", "spec.hardware", "regions"),
        "three-gpus": ("InvalidSpec", "spec.hardware.minGpusPerReplica", "1, 2, 4 or 8 GPUs"),
    }
    for path in sorted(INVALID.glob("*.yaml")):
        lab.kubectl("apply", "-n", ns, "-f", str(path))
    try:
        for name, (reason, field, hint) in expected.items():
            obj = wait_until(lambda name=name: _not_ready(lab, ns, name), what=f"{name} Ready=False")
            ready = cond(obj)
            assert ready["reason"] == reason
            assert field in ready["message"] and hint in ready["message"]
            warnings = wait_until(
                lambda name=name: [e for e in events(lab, ns, name) if e["type"] == "Warning"]
            )
            assert warnings[0]["reason"] == reason
            if reason != "NoMatchingHardware":
                assert cond(obj, "InvalidSpec")["status"] == "True"
        # The operator keeps serving everything else.
        lab.kubectl(
            "wait", "--for=condition=Ready", *(f"wp/{n}" for n in WORKLOADS), "-n", ns, "--timeout=30s"
        )
        # Fixing the spec makes it Ready, with a Normal Event and the new generation observed.
        lab.kubectl(
            "patch", "wp", "typo-model", "-n", ns, "--type=merge",
            "-p", json.dumps({"spec": {"model": {"name": "meta-llama/Llama-3.1-8B-Instruct"}}}),
        )  # fmt: skip
        lab.kubectl("wait", "--for=condition=Ready", "wp/typo-model", "-n", ns, "--timeout=60s")
        fixed = wp(lab, ns, "typo-model")
        assert fixed["status"]["observedGeneration"] == fixed["metadata"]["generation"] == 2
        assert cond(fixed)["reason"] == "RecommendationProvided"
        assert [e["type"] for e in events(lab, ns, "typo-model")].count("Normal") == 1
        assert gm_operator.alive()
    finally:
        for path in sorted(INVALID.glob("*.yaml")):
            lab.kubectl("delete", "-n", ns, "-f", str(path), "--ignore-not-found", check=False)


def test_a_doubtful_spec_is_planned_with_a_warning(lab: Lab, examples: str) -> None:
    """Numbers the API server accepts but nobody means (1e6 parameters in 80 layers of 8192): the
    profile gets a recommendation, InvalidSpec=False with reason SpecDoubtful and a Warning Event."""
    ns = examples
    arch = {"parameters": 1.0e6, "layers": 80, "hiddenSize": 8192, "attentionHeads": 64, "kvHeads": 8}
    manifest = {
        "apiVersion": "greenmatrix.io/v1alpha1",
        "kind": "WorkloadProfile",
        "metadata": {"name": "doubtful-numbers"},
        "spec": {"task": "inference", "model": {"architecture": arch}, "inference": {}},
    }
    lab.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(manifest))
    try:
        lab.kubectl("wait", "--for=condition=Ready", "wp/doubtful-numbers", "-n", ns, "--timeout=60s")
        invalid = cond(wp(lab, ns, "doubtful-numbers"), "InvalidSpec")
        assert (invalid["status"], invalid["reason"]) == ("False", "SpecDoubtful")
        assert invalid["message"].startswith("spec.model.architecture.parameters: ")
        warnings = wait_until(
            lambda: [e for e in events(lab, ns, "doubtful-numbers") if e["type"] == "Warning"]
        )
        assert [e["reason"] for e in warnings] == ["SpecDoubtful"]
    finally:
        lab.kubectl("delete", "wp", "doubtful-numbers", "-n", ns, "--ignore-not-found", check=False)


def test_objects_deleted_mid_flight_do_not_hurt(
    lab: Lab, gm_operator: RunningOperator, examples: str
) -> None:
    ns = examples
    manifest = yaml.safe_load((REPO / "examples" / "llama-8b-chat.yaml").read_text())
    for i in range(5):
        manifest["metadata"]["name"] = f"ephemeral-{i}"
        lab.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(manifest))
        lab.kubectl("delete", "wp", f"ephemeral-{i}", "-n", ns, "--wait=false")
    manifest["metadata"]["name"] = "after-the-storm"
    lab.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(manifest))
    try:
        lab.kubectl("wait", "--for=condition=Ready", "wp/after-the-storm", "-n", ns, "--timeout=60s")
        assert gm_operator.alive()
    finally:
        lab.kubectl("delete", "wp", "after-the-storm", "-n", ns, "--ignore-not-found", check=False)


L40S_LABELS = {
    "nvidia.com/gpu.present": "true",
    "nvidia.com/gpu.product": "NVIDIA-L40S",
    "nvidia.com/gpu.memory": "46068",
    "nvidia.com/gpu.count": "4",
    "nvidia.com/gpu.family": "ada-lovelace",
    "topology.kubernetes.io/region": "us-east-1",
    "node.kubernetes.io/instance-type": "g6e.12xlarge",
    "feature.node.kubernetes.io/cpu-model.vendor_id": "AMD",
}


def test_node_changes_reach_status_within_seconds(lab: Lab, examples: str) -> None:
    ns, name, node = examples, "llama-8b-finetune", "gm-e2e-gpu-0"
    lab.kubectl("wait", "--for=condition=Ready", f"wp/{name}", "-n", ns, "--timeout=60s")

    def entry(gpu: str) -> dict[str, Any] | None:
        inventory = wp(lab, ns, name)["status"]["inventory"]
        return next((g for g in inventory.get("gpus", []) if g["gpu"] == gpu), None)

    lab.add_node(node, L40S_LABELS, {"cpu": "48", "memory": "384Gi", "pods": "110", "nvidia.com/gpu": "4"})
    try:
        l40s = wait_until(lambda: entry("L40S"), 30, "the new L40S node in status")
        assert (l40s["nodes"], l40s["totalGpus"], l40s["product"], l40s["known"]) == (
            1,
            4,
            "NVIDIA-L40S",
            True,
        )
        wait_until(lambda: counts_every_node(lab, ns, name), 30, "the new node to be counted")

        # Relabelled (say GFD re-ran after a board swap): the type changes in place.
        lab.kubectl(
            "label",
            "node",
            node,
            "--overwrite",
            "nvidia.com/gpu.product=NVIDIA-H200",
            "nvidia.com/gpu.memory=143771",
        )
        wait_until(lambda: entry("H200-SXM-141GB") and not entry("L40S"), 30, "the relabelled node as H200")
        listed = gpus(wp(lab, ns, name))
        assert listed.index("H200-SXM-141GB") < listed.index("H100-SXM-80GB")  # more bandwidth first

        # Cordoned: no longer schedulable, so no longer matched, though still counted.
        lab.kubectl("cordon", node)
        wait_until(lambda: not entry("H200-SXM-141GB"), 30, "the cordoned node to drop out")
        wait_until(lambda: counts_every_node(lab, ns, name), 30, "the cordoned node to stay counted")
        lab.kubectl("uncordon", node)
        wait_until(lambda: entry("H200-SXM-141GB"), 30, "the uncordoned node to come back")
    finally:
        lab.delete_node(node)
    wait_until(
        lambda: not entry("H200-SXM-141GB") and counts_every_node(lab, ns, name),
        30,
        "the deleted node to leave status",
    )


def test_policy_changes_re_evaluate_profiles(lab: Lab, examples: str) -> None:
    ns = examples
    chat_wps = policy(lab, ns, CHAT_POLICY)["status"]["appliedWorkloads"]
    assert chat_wps
    lab.kubectl("patch", "op", CHAT_POLICY, "-n", ns, "--type=merge", "-p", '{"spec": {"priority": -5}}')
    try:
        wait_until(
            lambda: policy(lab, ns, DEFAULT_POLICY)["status"]["appliedWorkloads"] == WORKLOADS,
            30,
            "the default policy to win everywhere",
        )
        wait_until(
            lambda: policy(lab, ns, CHAT_POLICY)["status"].get("appliedWorkloads") == [], 30, "chat to lose"
        )
        chat = policy(lab, ns, CHAT_POLICY)
        assert cond(chat)["observedGeneration"] == chat["metadata"]["generation"] == 2
        # Without the chat policy's region constraint, the europe-west4 A100s are in their inventory.
        for name in chat_wps:
            wait_until(lambda name=name: "A100-SXM4-80GB" in gpus(wp(lab, ns, name)), 30, f"A100 for {name}")
    finally:
        lab.kubectl("patch", "op", CHAT_POLICY, "-n", ns, "--type=merge", "-p", '{"spec": {"priority": 10}}')
    for name in chat_wps:
        wait_until(
            lambda name=name: "A100-SXM4-80GB" not in gpus(wp(lab, ns, name)), 30, f"no A100 for {name}"
        )

    # Deleting the default policy leaves its profiles without a policy; they stay Ready.
    lab.kubectl("delete", "op", DEFAULT_POLICY, "-n", ns)
    try:
        wait_until(lambda: policy(lab, ns, CHAT_POLICY)["status"]["appliedWorkloads"] == chat_wps, 30)
        lab.kubectl("wait", "--for=condition=Ready", "wp", "--all", "-n", ns, "--timeout=30s")
    finally:
        lab.kubectl("apply", "-n", ns, "-f", str(REPO / "examples" / "policy-green-default.yaml"))


def test_a_policy_naming_an_unknown_gpu_is_not_ready(lab: Lab, examples: str) -> None:
    ns = examples
    manifest = {
        "apiVersion": "greenmatrix.io/v1alpha1",
        "kind": "OptimizationPolicy",
        "metadata": {"name": "imaginary-gpus-only"},
        "spec": {
            "selector": {"matchLabels": {"team": "nobody"}},
            "constraints": {"allowedGpus": ["NVIDIA-Z9000"]},
        },
    }
    lab.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(manifest))
    try:
        obj = wait_until(
            lambda: _not_ready(lab, ns, "imaginary-gpus-only", "optimizationpolicy"), 30, "policy Ready=False"
        )
        assert cond(obj)["reason"] == "UnknownHardware"
        assert "spec.constraints.allowedGpus[0]" in cond(obj)["message"]
        assert cond(obj, "InvalidSpec")["status"] == "True"
        warnings = wait_until(
            lambda: [e for e in events(lab, ns, "imaginary-gpus-only") if e["type"] == "Warning"]
        )
        assert warnings[0]["reason"] == "UnknownHardware"
        # The other policies keep their standing.
        assert cond(policy(lab, ns, CHAT_POLICY))["status"] == "True"
    finally:
        lab.kubectl("delete", "op", "imaginary-gpus-only", "-n", ns, "--ignore-not-found")
