"""The live loop on real parts: a Deployment on kwok GPU nodes, `greenmatrix lab replay` serving vLLM
and DCGM metrics that the lab's Prometheus scrapes, and `greenmatrix operator --prometheus-url`
writing what it reads, forecasts and decides into the WorkloadProfile's status.

The trace is built here around the capacity the engine predicts for one replica, so the replica
counts it should lead to are known: a plateau two replicas serve, a ramp to a peak several more
are needed for, then back down. Two hours of it are backfilled so the forecaster is warm at once.
"""

from __future__ import annotations

import csv
import json
import math
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from greenmatrix_lab import Lab
from operator_helpers import REPO, RunningOperator, get_json, gpu_deployment, wait_until

from greenmatrix import WorkloadProfileSpec, plan

pytest_plugins = ["operator_fixtures"]

# Its own namespace per run: backfilled history written by an earlier run stays in Prometheus.
NAMESPACE = f"gm-live-{secrets.token_hex(3)}"
STEP = 10.0  # the trace's and the evaluations' step, seconds
WINDOW = 20.0  # the operator's rate window: four 5 s scrapes
BACKFILL = 2 * 3600.0
H100 = "NVIDIA-H100-80GB-HBM3"

PROFILE = {
    "task": "inference",
    "model": {"name": "meta-llama/Llama-3.1-8B-Instruct", "precision": "bf16", "framework": "vllm"},
    "inference": {"inputTokens": 1024, "outputTokens": 256, "concurrency": 32, "slo": {"tpotMs": 60}},
    "targetRef": {"kind": "Deployment", "name": "chat"},
}
POLICY = {
    "evaluationInterval": "10s",
    "scaling": {
        "minReplicas": 1,
        "maxReplicas": 12,
        "maxScaleUpStep": 12,
        "maxScaleDownStep": 12,
        "cooldown": "0s",
        "scaleDownStabilization": "30s",
        "targetUtilization": 0.7,
    },
}


def replica_capacity() -> float:
    """Requests/s one H100 replica serves, as the engine predicts it (p50)."""
    spec = WorkloadProfileSpec.model_validate(PROFILE)
    option = next(o for o in plan(spec, None, gpus=["H100-SXM-80GB"]).options if o.gpus_per_replica == 1)
    return PROFILE["inference"]["concurrency"] / (option.request_latency_ms.p50 / 1e3)


def write_trace(path: Path, capacity: float, start: float) -> list[tuple[float, float]]:
    """Backfilled history (a gentle wave around what two replicas serve), then live: plateau, ramp to
    the peak, hold, back down and hold."""
    base, peak = 0.9 * capacity, 4.0 * capacity
    rows = []
    t = start - BACKFILL
    while t < start:
        phase = 2 * math.pi * (t - start) / 1800.0
        rows.append((t, base * (1 + 0.1 * math.sin(phase))))
        t += STEP
    live = [base] * 6 + [base + (peak - base) * i / 6 for i in range(1, 7)] + [peak] * 12 + [base] * 40
    rows += [(start + i * STEP, v) for i, v in enumerate(live)]
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["timestamp", "value"])
        writer.writerows([(f"{t:.0f}", f"{v:.4f}") for t, v in rows])
    return rows


def apply(lab: Lab, *docs: dict[str, Any]) -> None:
    lab.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))


def deployment(replicas: int) -> dict[str, Any]:
    return gpu_deployment(NAMESPACE, "chat", replicas, H100)


@pytest.fixture(scope="module")
def live_operator(crds: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningOperator]:
    from operator_fixtures import running_operator

    log = tmp_path_factory.mktemp("live-operator") / "operator.log"
    extra = [
        "--prometheus-url",
        crds.prometheus_url,
        "--scrape-interval",
        "5",
        "--startup",
        "10",
        "--history",
        str(int(BACKFILL)),
    ]
    with running_operator(crds, NAMESPACE, log, extra) as running:
        yield running


def ready_replicas(lab: Lab) -> int:
    return get_json(lab, "deployment", "chat", "-n", NAMESPACE).get("status", {}).get("readyReplicas", 0)


def status(lab: Lab) -> dict[str, Any]:
    return get_json(lab, "workloadprofile", "chat", "-n", NAMESPACE).get("status", {})


def condition(s: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in s.get("conditions", []) if c["type"] == type_), {})


def test_a_replayed_trace_reaches_the_status(live_operator: RunningOperator, lab: Lab, tmp_path: Path):
    capacity = replica_capacity()
    apply(lab, deployment(2))
    wait_until(
        lambda: (
            get_json(lab, "deployment", "chat", "-n", NAMESPACE).get("status", {}).get("readyReplicas") == 2
        ),
        120,
        "two ready pods on kwok H100 nodes",
    )
    start = time.time() + 5
    write_trace(tmp_path / "trace.csv", capacity, start)
    replay = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "greenmatrix"),
            "lab",
            "replay",
            "--target",
            f"{NAMESPACE}/chat",
            "--trace",
            str(tmp_path / "trace.csv"),
            "--backfill",
            f"{int(BACKFILL)}s",
            "--record",
            str(tmp_path / "served.csv"),
        ],
        env=lab.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: serving_live(tmp_path / "served.csv"), 120, "the emulator serving live")
        apply(
            lab,
            {
                "apiVersion": "greenmatrix.io/v1alpha1",
                "kind": "OptimizationPolicy",
                "metadata": {"name": "live", "namespace": NAMESPACE},
                "spec": POLICY,
            },
            {
                "apiVersion": "greenmatrix.io/v1alpha1",
                "kind": "WorkloadProfile",
                "metadata": {"name": "chat", "namespace": NAMESPACE},
                "spec": PROFILE,
            },
        )
        # Once the rate window lies wholly in the live part (not across the backfill's seam).
        settled = live_start(tmp_path / "served.csv") + WINDOW + 5
        first = wait_until(
            lambda: (
                (s := status(lab)).get("forecast", {}).get("requestsPerSecond")
                and epoch(s["observed"]["asOf"]) >= settled
                and s
            ),
            180,
            "observed figures and a forecast in the status",
        )
        assert condition(first, "MetricsAvailable")["status"] == "True"
        served = served_before(tmp_path / "served.csv", first["observed"]["asOf"], WINDOW)
        assert first["observed"]["requestsPerSecond"] == pytest.approx(served, rel=0.10)
        assert first["observed"]["readyReplicas"] == 2
        assert first.get("scaling", {}).get("currentReplicas") == 2, json.dumps(first, indent=1)[-3000:]
        low = first["scaling"]["desiredReplicas"]
        bad_input_is_named(lab)
        seen: list[str] = []

        def risen(s: dict[str, Any] | None = None) -> dict[str, Any] | None:
            s = s or status(lab)
            scaling, forecast = s.get("scaling", {}), s.get("forecast", {})
            seen.append(
                f"{s.get('observed', {}).get('requestsPerSecond')} -> {forecast.get('requestsPerSecond')}"
                f" desired {scaling.get('desiredReplicas')}: {scaling.get('reason')}"
            )
            return s if scaling.get("desiredReplicas", 0) > low + 1 else None

        try:
            high = wait_until(risen, 240, "the desired replicas rising with the load")
        except pytest.fail.Exception:
            pytest.fail("desired replicas never rose; status over time:\n" + "\n".join(seen[::8]))
        assert high["scaling"]["action"] == "ScaleOut"
        peak = high["scaling"]["desiredReplicas"]
        prometheus_holds_the_desired_replicas(lab, live_operator)

        def fallen() -> bool:
            s = status(lab)
            risen(s)
            return s.get("scaling", {}).get("desiredReplicas", peak) < peak

        try:
            wait_until(fallen, 300, "the desired replicas falling after the peak")
        except pytest.fail.Exception:
            pytest.fail("desired replicas never fell; status over time:\n" + "\n".join(seen[-60::4]))
        prometheus_down_then_back(lab, live_operator)
    finally:
        replay.terminate()
        replay.wait(timeout=30)


def epoch(rfc3339: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def live_start(record: Path) -> float:
    with record.open() as rows:
        return min(float(row["wall_time"]) for row in csv.DictReader(rows) if row["phase"] == "live")


def serving_live(record: Path) -> bool:
    return record.exists() and ",live," in record.read_text()


def served_before(record: Path, as_of: str, window: float) -> float:
    """Requests/s the emulator served over all pods in the rate window ending at `as_of` (its record)."""
    from datetime import datetime

    end = datetime.fromisoformat(as_of.replace("Z", "+00:00")).timestamp()
    by_time: dict[float, float] = {}
    with record.open() as rows:
        for row in csv.DictReader(rows):
            t = float(row["wall_time"])
            if row["phase"] == "live" and end - window < t <= end:
                by_time[t] = by_time.get(t, 0.0) + float(row["served"])
    assert by_time, f"the emulator recorded nothing live in the {window:.0f}s before {as_of}"
    return sum(by_time.values()) / len(by_time)


def prometheus_down_then_back(lab: Lab, operator: RunningOperator) -> None:
    """Prometheus stopped: MetricsAvailable=False with the reason, the recommendation kept, no decision
    while blind, the operator alive; started again: True once more."""
    lab.stop_component("prometheus")
    try:
        blind = wait_until(
            lambda: condition(s := status(lab), "MetricsAvailable").get("status") == "False" and s,
            60,
            "MetricsAvailable=False with Prometheus stopped",
        )
        assert condition(blind, "MetricsAvailable")["reason"] == "PrometheusUnavailable"
        assert condition(blind, "Ready")["status"] == "True" and blind.get("recommendation")
        assert "scaling" not in blind and blind.get("observed")  # the last figures, no decision while blind
        assert operator.alive()
    finally:
        lab.start_prometheus()
    wait_until(
        lambda: condition(status(lab), "MetricsAvailable").get("status") == "True",
        120,
        "MetricsAvailable=True once Prometheus is back",
    )


def profile(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "greenmatrix.io/v1alpha1",
        "kind": "WorkloadProfile",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {**PROFILE, **spec},
    }


def bad_input_is_named(lab: Lab) -> None:
    """A missing target and an override Prometheus rejects: conditions naming the field, the rest kept."""
    apply(
        lab,
        profile("no-target", targetRef={"kind": "Deployment", "name": "missing"}),
        profile("bad-query", metrics={"ttftP95Seconds": "histogram_quantile(0.95, sum by (le) ("}),
    )

    def metrics_condition(name: str) -> dict[str, Any]:
        obj = get_json(lab, "workloadprofile", name, "-n", NAMESPACE).get("status", {})
        return condition(obj, "MetricsAvailable") and obj

    missing = wait_until(lambda: metrics_condition("no-target"), 60, "a condition on the missing target")
    said = condition(missing, "MetricsAvailable")
    assert (said["status"], said["reason"]) == ("False", "TargetNotFound")
    assert "spec.targetRef" in said["message"] and "missing" in said["message"]
    assert condition(missing, "Ready")["status"] == "True" and missing.get("recommendation")
    bad = wait_until(lambda: metrics_condition("bad-query"), 60, "a condition on the rejected override")
    said = condition(bad, "MetricsAvailable")
    assert (said["status"], said["reason"]) == ("True", "PartialMetrics")
    assert "spec.metrics.ttftP95Seconds" in said["message"] and "parse error" in said["message"]
    assert bad["observed"]["requestsPerSecond"] > 0 and "ttftP95Ms" not in bad["observed"]
    lab.kubectl("delete", "workloadprofile", "no-target", "bad-query", "-n", NAMESPACE)


def prometheus_holds_the_desired_replicas(lab: Lab, operator: RunningOperator) -> None:
    """The lab's Prometheus, scraping the operator, holds the desired replicas the status shows: what
    an HPA's external metric or a KEDA prometheus trigger would scale on."""
    import json as _json
    import urllib.parse
    import urllib.request

    address = operator.metrics_url.split("//", 1)[1].split("/", 1)[0]
    lab.add_scrape_target(f"operator-{NAMESPACE}", [address])
    query = f'greenmatrix_workload_desired_replicas{{namespace="{NAMESPACE}",name="chat"}}'

    def agree() -> bool:
        url = f"{lab.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
        with urllib.request.urlopen(url, timeout=5) as response:
            result = _json.load(response)["data"]["result"]
        shown = status(lab).get("scaling", {}).get("desiredReplicas")
        return bool(result) and shown is not None and float(result[0]["value"][1]) == shown

    try:
        wait_until(agree, 60, "Prometheus holding the desired replicas the status shows")
    finally:
        lab.remove_scrape_target(f"operator-{NAMESPACE}")


def test_the_hpa_example_is_one_the_api_server_admits(crds: Lab) -> None:
    """examples/autoscalers/hpa-external-metric.yaml, checked by the real API server (server dry run)."""
    example = REPO / "examples" / "autoscalers" / "hpa-external-metric.yaml"
    done = crds.kubectl("apply", "--dry-run=server", "-n", "default", "-f", str(example))
    assert "horizontalpodautoscaler.autoscaling/llama-8b-chat" in done.stdout
    hpa = yaml.safe_load(example.read_text())
    assert hpa["spec"]["metrics"][0]["external"]["metric"]["name"] == "greenmatrix_workload_desired_replicas"
