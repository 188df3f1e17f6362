"""Pre-deployment recommendations on a real API server, observed through kubectl as users observe them.

`greenmatrix operator` runs as a subprocess (fixture `gm_operator`, shared with test_operator.py)
in its own namespace; this module applies the examples there once. The lab is shared with other
sessions, so node changes are made only on nodes this module creates, and every test puts back
what it changed. Expectations are what the lab's hardware allows (a recommendation must fit the
nodes) or what the ranking promises, never numbers copied from the engine.
"""

from __future__ import annotations

import copy
import json
import re
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from greenmatrix_lab import Lab
from operator_helpers import REPO, Metrics, RunningOperator, get_json, in_a_quiet_window, wait_until

from greenmatrix.catalog import hardware

pytest_plugins = ["operator_fixtures"]

EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
CHAT = "llama-8b-chat"


def _docs(kind: str) -> dict[str, dict[str, Any]]:
    out = {}
    for path in EXAMPLES:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == kind:
                out[doc["metadata"]["name"]] = doc
    return out


WORKLOADS = _docs("WorkloadProfile")
POLICIES = _docs("OptimizationPolicy")


def say(message: str) -> None:
    """Measurements for the report (shown with -s); nothing is asserted about them."""
    sys.stderr.write(f"\n[measured] {message}\n")


def wp(lab: Lab, ns: str, name: str) -> dict[str, Any]:
    return get_json(lab, "workloadprofile", name, "-n", ns)


def cond(obj: dict[str, Any], type_: str = "Ready") -> dict[str, Any]:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_), {})


def rec(lab: Lab, ns: str, name: str) -> dict[str, Any]:
    return wp(lab, ns, name).get("status", {}).get("recommendation") or {}


def events(lab: Lab, ns: str, name: str) -> list[dict[str, Any]]:
    items = get_json(lab, "events", "-n", ns, "--field-selector", f"involvedObject.name={name}")["items"]
    return [e for e in items if e.get("source", {}).get("component") == "greenmatrix-operator"]


def node_gpus(lab: Lab) -> dict[str, int]:
    """GPU type (catalog key) -> most GPUs on one Ready, schedulable node of that type, right now."""
    out: dict[str, int] = {}
    for node in get_json(lab, "nodes")["items"]:
        product = node["metadata"].get("labels", {}).get("nvidia.com/gpu.product")
        ready = any(
            c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", [])
        )
        if not product or not ready or node["spec"].get("unschedulable"):
            continue
        key = hardware.normalize_gpu_name(product)
        count = int(node["status"].get("allocatable", {}).get("nvidia.com/gpu", "0"))
        out[key] = max(out.get(key, 0), count)
    return out


def applied(spec: dict[str, Any], labels: dict[str, str]) -> str | None:
    """Which example policy should apply (highest priority, ties to the first name)."""
    selecting = [
        (-p["spec"].get("priority", 0), name)
        for name, p in POLICIES.items()
        if all(labels.get(k) == v for k, v in p["spec"].get("selector", {}).get("matchLabels", {}).items())
    ]
    return min(selecting)[1] if selecting else None


@pytest.fixture(scope="module")
def ns(gm_operator: RunningOperator, lab: Lab) -> Iterator[str]:
    namespace = gm_operator.namespace
    for path in EXAMPLES:
        lab.kubectl("apply", "-n", namespace, "-f", str(path))
    lab.kubectl("wait", "--for=condition=Ready", "wp", "--all", "-n", namespace, "--timeout=120s")
    # Ready may come before the policies applied after the profiles have been taken into account.
    for name, doc in WORKLOADS.items():
        policy = applied(doc["spec"], doc["metadata"].get("labels", {}))
        wait_until(
            lambda name=name, policy=policy: (
                wp(lab, namespace, name)["status"].get("appliedPolicy") == policy
            ),
            60,
            f"{name} to follow {policy}",
        )
    yield namespace
    lab.kubectl("delete", "-n", namespace, "wp,op", "--all", check=False)
    # Events outlive their objects and are found by name: test_operator.py recreates these names.
    lab.kubectl("delete", "-n", namespace, "events", "--all", check=False)


def test_every_example_gets_a_recommendation_that_fits_the_lab(lab: Lab, ns: str) -> None:
    lab.kubectl("wait", "--for=condition=Ready", "wp", "--all", "-n", ns, "--timeout=60s")
    gpus = node_gpus(lab)
    for name, doc in WORKLOADS.items():
        obj = wp(lab, ns, name)
        status = obj["status"]
        ready = cond(obj)
        assert ready["reason"] == "RecommendationProvided"
        assert ready["message"] == status["recommendation"]["explanation"]
        assert cond(obj, "RecommendationProvided")["status"] == "True"
        assert cond(obj, "InvalidSpec")["status"] == "False"
        assert status["appliedPolicy"] == applied(doc["spec"], doc["metadata"].get("labels", {}))
        r = status["recommendation"]
        assert "bound" in r["basis"] or "MFU" in r["basis"], r["basis"]  # kept by the CRD's schema
        predicted = r["predicted"]
        if predicted.get("tpotMs") and not r["gpu"].startswith("cpu/"):
            # A serving basis says which interval the numbers carry: GPU and model measured together,
            # apart, or the GPU never measured.
            cases = ("measured serving this architecture", "never serving this architecture", "No serving")
            assert any(c in r["basis"] for c in cases), r["basis"]
        assert predicted["inCluster"] and predicted["feasible"]
        if r["gpu"].startswith("cpu/"):
            assert r["gpusPerReplica"] == 0 and not r["resources"]["requests"].get("nvidia.com/gpu")
        else:
            assert r["gpu"] in gpus, f"{name}: {r['gpu']} is not on any usable node"
            assert 1 <= r["gpusPerReplica"] <= gpus[r["gpu"]]
            assert r["resources"]["limits"]["nvidia.com/gpu"] == str(r["gpusPerReplica"])
            assert hardware.normalize_gpu_name(r["nodeSelector"]["nvidia.com/gpu.product"]) == r["gpu"]
        assert r["replicas"] >= 1
        assert predicted["watts"] > 0 and predicted.get("gramsCo2PerMillionTokens", 1) > 0
        assert len(status.get("alternatives", [])) <= 10
        assert all(a["inCluster"] for a in status.get("alternatives", []))
        assert all(not o["inCluster"] for o in status.get("betterOutsideCluster", []))
        if doc["spec"]["task"] == "inference":
            for interval in ("ttftMs", "tpotMs", "requestLatencyMs"):
                p = predicted[interval]
                assert 0 < p["p10"] <= p["p50"] <= p["p90"]
            assert predicted["usdPerMillionTokens"] == r["usdPerMillionTokens"] > 0

    big = rec(lab, ns, "llama-70b-fp8")
    weights_gib = 70.6e9 / 2**30  # 70.6B parameters at one byte each (fp8)
    assert big["gpusPerReplica"] >= 2  # the spec's minGpusPerReplica
    assert big["gpusPerReplica"] * hardware.gpu(big["gpu"]).memory_gib > weights_gib

    training = rec(lab, ns, "llama-8b-finetune")
    hours = training["predicted"]["trainingHours"]
    deadline = WORKLOADS["llama-8b-finetune"]["spec"]["training"]["deadlineHours"]
    assert 0 < hours["p10"] <= hours["p50"] <= hours["p90"] and hours["p50"] <= deadline
    assert training["latency"].startswith("run ")

    small = rec(lab, ns, "small-summarizer")
    assert small["gpu"] == "L4" or small["gpu"].startswith("cpu/")


def _cells(out: str, namespace: str, row_name: str) -> dict[str, str]:
    """`kubectl get` output cut at the header's column starts (cells may contain spaces)."""
    lines = out.splitlines()
    header = lines[0]
    names = [
        "NAMESPACE",
        "NAME",
        "TASK",
        "MODEL",
        "GPU",
        "COUNT",
        "REPLICAS",
        "LATENCY",
        "$/1M TOK",
        "READY",
        "AGE",
    ]
    starts = [re.search(rf"(?<!\S){re.escape(n)}(?!\S)", header).start() for n in names]  # type: ignore[union-attr]
    row = next(line for line in lines[1:] if line.split()[:2] == [namespace, row_name])
    bounds = [*starts[1:], None]
    return {n: row[s:e].strip() for n, s, e in zip(names, starts, bounds, strict=True)}


def test_kubectl_get_shows_the_recommendation_columns(lab: Lab, ns: str) -> None:
    out = lab.kubectl("get", "wp", "-A").stdout
    for name in WORKLOADS:
        cells = _cells(out, ns, name)
        r = rec(lab, ns, name)
        assert cells["GPU"] == r["gpu"]
        assert cells["COUNT"] == str(r["gpusPerReplica"])
        assert cells["REPLICAS"] == str(r["replicas"])
        assert cells["LATENCY"] == r["latency"]
        assert cells["READY"] == "True"
        if WORKLOADS[name]["spec"]["task"] == "inference":
            assert float(cells["$/1M TOK"]) == pytest.approx(r["usdPerMillionTokens"])


def _new_gpu_labels(key: str) -> dict[str, str]:
    spec = hardware.gpu(key)
    return {
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": f"NVIDIA-{key}",
        "nvidia.com/gpu.memory": str(int(spec.memory_gib * 1024)),
        "nvidia.com/gpu.count": str(spec.gpus_per_node),
        "topology.kubernetes.io/region": "us-east-1",  # the chat policy allows only us-east-1
        "feature.node.kubernetes.io/cpu-model.vendor_id": "AMD",
    }


def test_node_changes_move_the_recommendation(lab: Lab, ns: str) -> None:
    before = rec(lab, ns, CHAT)
    outside = wp(lab, ns, CHAT)["status"].get("betterOutsideCluster") or []
    if not outside:
        pytest.skip("the cluster already has the best option for the chat profile")
    # betterOutsideCluster lists catalog options ranked above the recommendation in the same
    # ranking: once the cluster has that hardware (in the allowed region, with room for the
    # replicas), its option is the same one, now in the cluster, so it becomes the recommendation.
    target = outside[0]["gpu"]
    assert target != before["gpu"]
    spec = hardware.gpu(target)
    allocatable = {"cpu": "192", "memory": "2000Gi", "pods": "110", "nvidia.com/gpu": str(spec.gpus_per_node)}
    added = [f"gm-rec-{i}" for i in range(2)]
    started = time.monotonic()
    for node in added:
        lab.add_node(node, _new_gpu_labels(target), allocatable)
    try:
        moved = wait_until(
            lambda: rec(lab, ns, CHAT).get("gpu") == target and rec(lab, ns, CHAT), 60, f"{target}"
        )
        say(f"node added -> recommendation moved to {target}: {time.monotonic() - started:.2f}s")
        assert moved["nodeSelector"]["nvidia.com/gpu.product"] == f"NVIDIA-{target}"
        assert cond(wp(lab, ns, CHAT))["reason"] == "RecommendationProvided"
        uid = wp(lab, ns, CHAT)["metadata"]["uid"]
        changed = wait_until(
            lambda: [
                e
                for e in events(lab, ns, CHAT)
                if e["involvedObject"].get("uid") == uid
                and e["reason"] == "RecommendationChanged"
                and f"-> {target} x{moved['gpusPerReplica']}" in e["message"]
            ],
            30,
            "a RecommendationChanged Event naming the new GPU",
        )
        assert changed[0]["type"] == "Normal" and before["gpu"] in changed[0]["message"]

        # Cordoned: not schedulable, so no longer usable; the recommendation goes back.
        started = time.monotonic()
        for node in added:
            lab.kubectl("cordon", node)
        wait_until(lambda: rec(lab, ns, CHAT).get("gpu") == before["gpu"], 60, "the cordon to take effect")
        say(f"nodes cordoned -> recommendation back on {before['gpu']}: {time.monotonic() - started:.2f}s")
        for node in added:
            lab.kubectl("uncordon", node)
        wait_until(lambda: rec(lab, ns, CHAT).get("gpu") == target, 60, "the uncordon to take effect")

        # Relabelled to a GPU the chat profile cannot use well: the new type is a different option.
        for node in added:
            lab.kubectl("label", "node", node, "--overwrite", "nvidia.com/gpu.product=NVIDIA-L4")
        wait_until(lambda: rec(lab, ns, CHAT).get("gpu") != target, 60, "the relabel to take effect")
    finally:
        for node in added:
            lab.delete_node(node)
    wait_until(lambda: rec(lab, ns, CHAT) == before, 60, "the original recommendation to return")


def test_an_impossible_slo_is_not_ready_while_the_others_stay_ready(lab: Lab, ns: str) -> None:
    manifest = copy.deepcopy(WORKLOADS[CHAT])
    manifest["metadata"]["name"] = "llama-8b-impossible"
    manifest["spec"]["inference"]["slo"] = {"tpotMs": 0.5}
    lab.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(manifest))
    try:

        def not_ready() -> dict[str, Any] | None:
            obj = wp(lab, ns, "llama-8b-impossible")
            return obj if cond(obj).get("status") == "False" else None

        obj = wait_until(not_ready, 60, "Ready=False")
        ready = cond(obj)
        assert ready["reason"] == "NoFeasibleHardware"
        assert "0.5 ms" in ready["message"]  # the objective that cannot be met
        # The best (or closest) catalog option is named, a GPU the catalog knows.
        assert "catalog option" in ready["message"]
        tail = ready["message"].split("catalog option", 1)[1]
        assert any(g.key in tail for g in hardware.all_gpus())
        assert cond(obj, "InvalidSpec")["status"] == "False"
        assert cond(obj, "RecommendationProvided")["status"] == "False"
        assert "recommendation" not in obj["status"]
        warnings = wait_until(
            lambda: [e for e in events(lab, ns, "llama-8b-impossible") if e["type"] == "Warning"], 30
        )
        assert warnings[0]["reason"] == "NoFeasibleHardware"
        lab.kubectl(
            "wait", "--for=condition=Ready", *(f"wp/{n}" for n in WORKLOADS), "-n", ns, "--timeout=30s"
        )
        # Relaxing the objective makes it Ready with a recommendation.
        lab.kubectl(
            "patch", "wp", "llama-8b-impossible", "-n", ns, "--type=merge",
            "-p", json.dumps({"spec": {"inference": {"slo": {"tpotMs": 40}}}}),
        )  # fmt: skip
        lab.kubectl("wait", "--for=condition=Ready", "wp/llama-8b-impossible", "-n", ns, "--timeout=60s")
        assert rec(lab, ns, "llama-8b-impossible")["gpu"]
    finally:
        lab.kubectl("delete", "wp", "llama-8b-impossible", "-n", ns, "--ignore-not-found", check=False)


def _objective_policy(name: str, priority: int, weight: str) -> dict[str, Any]:
    objectives = {"latency": 0, "throughput": 0, "cost": 0, "energy": 0, "carbon": 0, weight: 1}
    return {
        "apiVersion": "greenmatrix.io/v1alpha1",
        "kind": "OptimizationPolicy",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"gm-e2e": "tradeoff"}},
            "priority": priority,
            "objectives": objectives,
        },
    }


def test_policy_objectives_change_the_recommended_option(lab: Lab, ns: str) -> None:
    manifest = copy.deepcopy(WORKLOADS[CHAT])
    manifest["metadata"] = {"name": "llama-8b-tradeoff", "labels": {"gm-e2e": "tradeoff"}}
    name = "llama-8b-tradeoff"
    lab.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(manifest))
    lab.kubectl(
        "apply", "-n", ns, "-f", "-", input=yaml.safe_dump(_objective_policy("cost-only", 20, "cost"))
    )
    try:
        wait_until(lambda: wp(lab, ns, name).get("status", {}).get("appliedPolicy") == "cost-only", 60)
        lab.kubectl("wait", "--for=condition=Ready", f"wp/{name}", "-n", ns, "--timeout=60s")
        by_cost = wp(lab, ns, name)["status"]
        # With one criterion weighted, the winner is the best on it among the cluster's options.
        usd = by_cost["recommendation"]["usdPerMillionTokens"]
        assert all(usd <= a["usdPerMillionTokens"] for a in by_cost.get("alternatives", []))

        policy = _objective_policy("latency-only", 30, "latency")
        lab.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(policy))
        wait_until(lambda: wp(lab, ns, name)["status"].get("appliedPolicy") == "latency-only", 60)
        by_latency = wp(lab, ns, name)["status"]
        latency = by_latency["recommendation"]["predicted"]["requestLatencyMs"]["p50"]
        assert all(latency <= a["requestLatencyMs"]["p50"] for a in by_latency.get("alternatives", []))
        headline = ("gpu", "gpusPerReplica", "replicas")
        assert [by_cost["recommendation"][k] for k in headline] != [
            by_latency["recommendation"][k] for k in headline
        ]
        wait_until(
            lambda: (
                get_json(lab, "op", "latency-only", "-n", ns).get("status", {}).get("appliedWorkloads")
                == [name]
            ),
            30,
            "the policy status to list the profile",
        )

        # The winner deleted, the other applies again and its recommendation comes back.
        lab.kubectl("delete", "op", "latency-only", "-n", ns)
        wait_until(lambda: wp(lab, ns, name)["status"].get("appliedPolicy") == "cost-only", 60)
        assert wp(lab, ns, name)["status"]["recommendation"] == by_cost["recommendation"]
    finally:
        lab.kubectl("delete", "op", "cost-only", "latency-only", "-n", ns, "--ignore-not-found", check=False)
        lab.kubectl("delete", "wp", name, "-n", ns, "--ignore-not-found", check=False)


def test_no_status_write_while_only_heartbeats_happen(
    lab: Lab, gm_operator: RunningOperator, ns: str
) -> None:
    lab.kubectl("wait", "--for=condition=Ready", "wp", "--all", "-n", ns, "--timeout=60s")
    writes = 'greenmatrix_operator_status_writes_total{kind="WorkloadProfile"}'
    node = next(n["metadata"]["name"] for n in get_json(lab, "nodes")["items"])

    def versions() -> dict[str, str]:
        return {
            o["metadata"]["name"]: o["metadata"]["resourceVersion"]
            for o in get_json(lab, "wp", "-n", ns)["items"]
        }

    def heartbeat(_: int) -> tuple[Metrics, Metrics, dict[str, str]]:
        wait_until(
            lambda: gm_operator.metrics()["greenmatrix_operator_queue_depth"] == 0, what="an idle queue"
        )
        before, rvs = gm_operator.metrics(), versions()
        node_rv = get_json(lab, "node", node)["metadata"]["resourceVersion"]
        # kwok renews node status every ~20 s: wait for one heartbeat to pass through the watch.
        wait_until(
            lambda: get_json(lab, "node", node)["metadata"]["resourceVersion"] != node_rv, 90, "a heartbeat"
        )
        time.sleep(1.0)
        return before, gm_operator.metrics(), rvs

    before, after, rvs = in_a_quiet_window(3, heartbeat)
    assert after[writes] == before[writes]
    assert versions() == rvs


def test_metrics_count_recommendations_by_gpu(lab: Lab, gm_operator: RunningOperator, ns: str) -> None:
    lab.kubectl("wait", "--for=condition=Ready", "wp", "--all", "-n", ns, "--timeout=60s")
    expected: dict[str, int] = {}
    items = get_json(lab, "wp", "-n", ns)["items"]
    for obj in items:
        gpu = (obj["status"].get("recommendation") or {}).get("gpu", "none")
        expected[gpu] = expected.get(gpu, 0) + 1

    def by_gpu() -> dict[str, int]:
        samples = gm_operator.metrics()
        return {
            key.split('gpu="', 1)[1].rstrip('"}'): int(v)
            for key, v in samples.items()
            if key.startswith("greenmatrix_recommendations{")
        }

    wait_until(
        lambda: {k: v for k, v in by_gpu().items() if v} == expected, 30, "the gauge to match the statuses"
    )
    samples = gm_operator.metrics()
    plans = samples["greenmatrix_operator_plan_duration_seconds_count"]
    assert plans >= 1 and samples["greenmatrix_operator_plan_duration_seconds_sum"] > 0
    mean_ms = 1000 * samples["greenmatrix_operator_plan_duration_seconds_sum"] / plans
    hits = samples["greenmatrix_operator_plan_cache_hits_total"]
    say(f"{plans:.0f} plans, mean {mean_ms:.1f} ms per plan, {hits:.0f} plan cache hits")
    assert "engine loaded in" in gm_operator.log_text()
