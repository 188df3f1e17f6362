"""Two operator replicas with Kopf peering on the real API server: only the one with the highest
priority reconciles (the other writes nothing); SIGKILLed, it is replaced by the standby within the
peering lifetime, which then brings new objects to Ready."""

from __future__ import annotations

import os
import secrets
import signal
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from greenmatrix_lab import Lab
from operator_helpers import REPO, RunningOperator, get_json, wait_until

pytest_plugins = ["operator_fixtures"]

NAMESPACE = f"gm-ha-{secrets.token_hex(3)}"
LIFETIME = 10
PEERING_CRDS = REPO / "manifests" / "components" / "ha" / "peering-crds.yaml"


def profile(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "greenmatrix.io/v1alpha1",
        "kind": "WorkloadProfile",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "task": "inference",
            "model": {"name": "meta-llama/Llama-3.1-8B-Instruct"},
            "inference": {"concurrency": 16},
        },
    }


def ready(lab: Lab, name: str) -> bool:
    status = get_json(lab, "workloadprofile", name, "-n", NAMESPACE).get("status", {})
    return any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))


def writes(operator: RunningOperator) -> float:
    return operator.metrics().get('greenmatrix_operator_status_writes_total{kind="WorkloadProfile"}', 0.0)


def test_the_standby_takes_over_within_the_lifetime(crds: Lab, tmp_path: Path) -> None:
    from operator_fixtures import _established, running_operator

    lab = crds
    lab.kubectl("apply", "--server-side", "-f", str(PEERING_CRDS))
    for name in ("kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev"):
        wait_until(lambda name=name: _established(lab, name), 60, f"CRD {name} Established")

    def flags(priority: int) -> list[str]:
        return ["--peering", "greenmatrix", "--priority", str(priority), "--peering-lifetime", str(LIFETIME)]

    with (
        running_operator(lab, NAMESPACE, tmp_path / "first.log", flags(200)) as first,
        running_operator(
            lab, NAMESPACE, tmp_path / "second.log", flags(100), fresh_namespace=False
        ) as second,
    ):
        lab.kubectl("apply", "-f", "-", input=yaml.safe_dump(profile("before")))
        wait_until(lambda: ready(lab, "before"), 90, "Ready from the active replica")
        time.sleep(3)  # a standby that wrote would have by now
        assert writes(first) >= 1 and writes(second) == 0, "the standby wrote a status"
        peers = get_json(lab, "kopfpeering", "greenmatrix", "-n", NAMESPACE).get("status", {})
        assert len(peers) == 2, peers
        os.killpg(first.process.pid, signal.SIGKILL)
        first.process.wait(timeout=10)
        killed = time.monotonic()
        lab.kubectl("apply", "-f", "-", input=yaml.safe_dump(profile("after")))
        wait_until(lambda: ready(lab, "after"), 3 * LIFETIME + 60, "Ready from the standby")
        took = time.monotonic() - killed
        assert writes(second) >= 1
        said = second.log_text()
        assert "standing by" not in said.split("active (", 1)[-1], "the standby went back to standing by"
    sys.stderr.write(f"failover: the standby wrote its first status {took:.1f}s after the SIGKILL\n")
