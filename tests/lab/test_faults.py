"""Faults on the lab under load: kube-apiserver restarted, etcd restarted, and a node deleted while
workloads are recommended onto its GPU type. After each, every WorkloadProfile converges (its status
describes its current generation, recommending from the nodes that remain), the operator never
restarts, and a fresh operator started at the end finds nothing to change: the statuses are what a
fresh evaluation gives."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import yaml
from greenmatrix_lab import Lab
from operator_helpers import get_json, wait_until

pytest_plugins = ["operator_fixtures"]

NAMESPACE = f"gm-faults-{secrets.token_hex(3)}"
COUNT = 24
FAULT_NODE = "fault-l40s-0"
L40S = {
    "nvidia.com/gpu.product": "NVIDIA-L40S",
    "nvidia.com/gpu.count": "4",
    "nvidia.com/gpu.memory": "46068",
    "topology.kubernetes.io/region": "us-east-1",
}


def profiles(concurrency: int) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "greenmatrix.io/v1alpha1",
            "kind": "WorkloadProfile",
            "metadata": {"name": f"wp-{i}", "namespace": NAMESPACE},
            "spec": {
                "task": "inference",
                "model": {"name": "meta-llama/Llama-3.1-8B-Instruct"},
                "inference": {"concurrency": concurrency + i % 4},
                # Only the fault node's GPU type: recommended while it is there, nothing after.
                "hardware": {"allowedGpus": ["L40S"]},
            },
        }
        for i in range(COUNT)
    ]


def statuses(lab: Lab) -> list[dict[str, Any]]:
    return get_json(lab, "workloadprofiles", "-n", NAMESPACE)["items"]


def converged(lab: Lab) -> list[dict[str, Any]] | None:
    items = statuses(lab)
    done = [
        o
        for o in items
        if o.get("status", {}).get("observedGeneration") == o["metadata"]["generation"]
        and any(c["type"] == "Ready" for c in o["status"].get("conditions", []))
    ]
    return items if len(items) == COUNT and len(done) == COUNT else None


def gpus(items: list[dict[str, Any]]) -> set[str]:
    return {o["status"].get("recommendation", {}).get("gpu", "none") for o in items}


def apply(lab: Lab, docs: list[dict[str, Any]]) -> None:
    lab.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))


def test_every_profile_converges_after_each_fault(crds: Lab, tmp_path: Path) -> None:
    from operator_fixtures import running_operator

    lab = crds
    lab.add_node(FAULT_NODE, L40S, {"nvidia.com/gpu": "4", "cpu": "48", "memory": "384Gi"})
    lab.kubectl("create", "namespace", NAMESPACE)
    try:
        with running_operator(lab, NAMESPACE, tmp_path / "operator.log", fresh_namespace=False) as first:
            apply(lab, profiles(8))
            items = wait_until(lambda: converged(lab), 120, "every profile evaluated")
            assert gpus(items) == {"L40S"}, gpus(items)
            for fault, concurrency in (("kube-apiserver", 12), ("etcd", 16)):
                lab.restart_component(fault)
                # Changed while the watches are (re)connecting: the operator must see every change.
                apply(lab, profiles(concurrency))
                items = wait_until(lambda: converged(lab), 180, f"every profile evaluated after {fault}")
                assert all(o["spec"]["inference"]["concurrency"] >= concurrency for o in items), (
                    "a status for an old spec"
                )
                assert first.alive(), first.log_text()[-3000:]
            lab.delete_node(FAULT_NODE)
            items = wait_until(
                lambda: (i := converged(lab)) and "L40S" not in gpus(i) and i,
                180,
                "every recommendation off the deleted node's GPU type",
            )
            assert gpus(items) == {"none"}, gpus(items)
            ready = [next(c for c in o["status"]["conditions"] if c["type"] == "Ready") for o in items]
            assert {(c["status"], c["reason"]) for c in ready} == {("False", "NoFeasibleHardware")}
            assert first.alive()
            restarts = first.log_text().count("engine loaded")
            assert restarts == 1, "the operator restarted"
        # A fresh operator finds nothing to change.
        with running_operator(lab, NAMESPACE, tmp_path / "fresh.log", fresh_namespace=False) as fresh:
            wait_until(
                lambda: (
                    fresh.metrics().get('greenmatrix_operator_reconciles_total{kind="WorkloadProfile"}', 0)
                    >= COUNT
                ),
                120,
                "the fresh operator reconciling every profile",
            )
            time.sleep(2)
            writes = fresh.metrics().get('greenmatrix_operator_status_writes_total{kind="WorkloadProfile"}')
            assert writes == 0, f"the fresh operator rewrote {writes} statuses"
    finally:
        lab.delete_node(FAULT_NODE)
        lab.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)
