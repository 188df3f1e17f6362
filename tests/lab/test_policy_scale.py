"""A policy over more profiles than its status lists, on the real API server: the CRD's `maxItems`
accepts what the operator writes, the counts cover every profile, and a stream of creates costs the
policy one recount a second, not one per create."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import kubernetes
from greenmatrix_lab import Lab
from operator_fixtures import running_operator
from operator_helpers import get_json, wait_until

from greenmatrix import GROUP, LISTED_WORKLOADS, VERSION

pytest_plugins = ["operator_fixtures"]

NAMESPACE = "gm-policy-scale"
N = 150
POLICY_WRITES = 'greenmatrix_operator_status_writes_total{kind="OptimizationPolicy"}'


def test_a_policy_over_150_profiles_counts_them_all_and_lists_100(crds: Lab, tmp_path: Path) -> None:
    lab = crds
    with running_operator(lab, NAMESPACE, tmp_path / "operator.log") as op:
        policy = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "OptimizationPolicy",
            "metadata": {"name": "all"},
            "spec": {"objectives": {"cost": 1, "latency": 1}},  # no selector: every profile
        }
        api = kubernetes.client.CustomObjectsApi(
            kubernetes.config.new_client_from_config(lab.env["KUBECONFIG"])
        )
        api.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "optimizationpolicies", policy)

        def one(i: int) -> None:
            body = {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "WorkloadProfile",
                "metadata": {"name": f"wp-{i:03d}"},
                "spec": {
                    "task": "inference",
                    "model": {"name": "meta-llama/Llama-3.1-8B-Instruct"},
                    "inference": {"concurrency": 8},
                },
            }
            api.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "workloadprofiles", body)

        # A steady stream (as a rollout of many profiles would be), not one instant burst.
        started = time.monotonic()
        for i in range(N):
            one(i)
            time.sleep(0.04)
        spread = time.monotonic() - started

        def counted() -> dict[str, Any] | None:
            status = get_json(lab, "op", "all", "-n", NAMESPACE).get("status") or {}
            return status if status.get("selectedCount") == N and status.get("appliedCount") == N else None

        status = wait_until(counted, 120, f"the policy to count {N} profiles")
        names = sorted(f"wp-{i:03d}" for i in range(N))
        assert status["selectedWorkloads"] == status["appliedWorkloads"] == names[:LISTED_WORKLOADS]
        # Recounted at most once a second of the stream (and once after it), not once per create.
        writes = op.metrics().get(POLICY_WRITES, 0)
        assert writes <= spread + 3, (writes, spread)
        assert "Rejected" not in op.log_text() and " ERROR " not in op.log_text()
