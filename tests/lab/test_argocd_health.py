"""The Argo CD health checks (manifests/argocd, Lua) on statuses the operator really writes: Healthy,
Degraded, Suspended, and Progressing between a spec change and the operator's next write; and kstatus
(kpt, Flux, cli-utils) on the same statuses: Current, Failed, InProgress."""

from __future__ import annotations

from typing import Any

import yaml
from greenmatrix_lab import Lab
from operator_helpers import ARGOCD, RunningOperator, argocd_health, get_json, kstatus, wait_until

pytest_plugins = ["operator_fixtures"]

CHAT = {"task": "inference", "model": {"name": "meta-llama/Llama-3.1-8B-Instruct"}, "inference": {}}


def doc(
    kind: str, name: str, namespace: str, spec: dict[str, Any], labels: dict[str, str] | None = None
) -> dict:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "greenmatrix.io/v1alpha1", "kind": kind, "metadata": meta, "spec": spec}


def evaluated(lab: Lab, kind: str, name: str, namespace: str) -> dict[str, Any]:
    def seen() -> dict[str, Any] | None:
        obj = get_json(lab, kind.lower(), name, "-n", namespace)
        status = obj.get("status", {})
        ok = status.get("observedGeneration") == obj["metadata"]["generation"] and status.get("conditions")
        return obj if ok else None

    return wait_until(seen, 90, f"{kind} {name} evaluated")


def test_health_of_what_the_operator_writes(gm_operator: RunningOperator, lab: Lab) -> None:
    ns = gm_operator.namespace
    docs = [
        doc("WorkloadProfile", "argo-ok", ns, CHAT, {"argo": "yes"}),
        doc("WorkloadProfile", "argo-typo", ns, {**CHAT, "model": {"name": "meta-llama/Llama-9-Imaginary"}}),
        doc("OptimizationPolicy", "argo-on", ns, {"selector": {"matchLabels": {"argo": "yes"}}}),
        doc(
            "OptimizationPolicy",
            "argo-paused",
            ns,
            {"selector": {"matchLabels": {"argo": "no"}}, "paused": True},
        ),
    ]
    lab.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))
    try:
        ok = evaluated(lab, "WorkloadProfile", "argo-ok", ns)
        typo = evaluated(lab, "WorkloadProfile", "argo-typo", ns)
        on = evaluated(lab, "OptimizationPolicy", "argo-on", ns)
        paused = evaluated(lab, "OptimizationPolicy", "argo-paused", ns)
    finally:
        lab.kubectl("delete", "wp", "argo-ok", "argo-typo", "-n", ns, check=False)
        lab.kubectl("delete", "op", "argo-on", "argo-paused", "-n", ns, check=False)
    assert argocd_health(ok)["status"] == "Healthy"
    degraded = argocd_health(typo)
    assert degraded["status"] == "Degraded" and "UnknownModel" in degraded["message"]
    assert argocd_health(on)["status"] == "Healthy"
    assert argocd_health(paused)["status"] == "Suspended"
    computed = kstatus(lab, ok, typo, on, paused)
    assert [k["status"] for k in computed] == ["Current", "Failed", "Current", "Current"]
    assert "Llama-9-Imaginary" in computed[1]["message"]  # Stalled carries Ready's message
    stalled = {c["type"]: c for c in typo["status"]["conditions"]}["Stalled"]
    assert (stalled["status"], stalled["reason"]) == ("True", "UnknownModel")
    assert all("Stalled" not in {c["type"] for c in o["status"]["conditions"]} for o in (ok, on, paused))
    # A spec change Argo CD just synced, before the operator's next write.
    for obj in (ok, on):
        obj["metadata"]["generation"] += 1
        assert argocd_health(obj)["status"] == "Progressing"
        assert kstatus(lab, obj)[0]["status"] == "InProgress"


def test_the_configmap_carries_the_same_checks() -> None:
    data = yaml.safe_load((ARGOCD / "argocd-cm.yaml").read_text())["data"]
    for kind in ("WorkloadProfile", "OptimizationPolicy"):
        lua = (ARGOCD / f"{kind.lower()}-health.lua").read_text()
        assert data[f"resource.customizations.health.greenmatrix.io_{kind}"] == lua
