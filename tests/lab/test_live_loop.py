"""The live loop on real parts: a Deployment on kwok GPU nodes, `greenmatrix lab replay` serving vLLM
and DCGM metrics that the lab's Prometheus scrapes, and `greenmatrix operator --prometheus-url`
writing what it reads, forecasts and decides into the WorkloadProfile's status.

The trace is built here around the capacity the engine predicts for one replica, so the replica
counts it should lead to are known: a plateau two replicas serve, a ramp to a peak several more
are needed for, then back down. Two hours of it are backfilled so the forecaster is warm at once.
"""

from __future__ import annotations

import csv
import math
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from greenmatrix_lab import Lab
from operator_helpers import RunningOperator, get_json, wait_until

from greenmatrix import WorkloadProfileSpec, plan

pytest_plugins = ["operator_fixtures"]

NAMESPACE = "gm-live-e2e"
STEP = 10.0  # the trace's and the evaluations' step, seconds
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
    live = [base] * 6 + [base + (peak - base) * i / 6 for i in range(1, 7)] + [peak] * 12 + [base] * 18
    rows += [(start + i * STEP, v) for i, v in enumerate(live)]
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["timestamp", "value"])
        writer.writerows([(f"{t:.0f}", f"{v:.4f}") for t, v in rows])
    return rows


def apply(lab: Lab, *docs: dict[str, Any]) -> None:
    lab.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))


def deployment(replicas: int) -> dict[str, Any]:
    labels = {"app": "chat"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "chat", "namespace": NAMESPACE},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": {"nvidia.com/gpu.product": H100},
                    "tolerations": [{"operator": "Exists"}],
                    "containers": [
                        {
                            "name": "vllm",
                            "image": "vllm/vllm-openai:v0.11.0",
                            "resources": {"limits": {"nvidia.com/gpu": "1"}},
                        }
                    ],
                },
            },
        },
    }


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
    trace = write_trace(tmp_path / "trace.csv", capacity, start)
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
        ],
        env=lab.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
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
        first = wait_until(
            lambda: (
                (s := status(lab)).get("observed") and s.get("forecast", {}).get("requestsPerSecond") and s
            ),
            180,
            "observed figures and a forecast in the status",
        )
        assert condition(first, "MetricsAvailable")["status"] == "True"
        served = served_at(trace, first["observed"]["asOf"])
        assert first["observed"]["requestsPerSecond"] == pytest.approx(served, rel=0.10)
        assert first["observed"]["readyReplicas"] == 2
        assert first["scaling"]["currentReplicas"] == 2
        low = first["scaling"]["desiredReplicas"]
        high = wait_until(
            lambda: (s := status(lab)).get("scaling", {}).get("desiredReplicas", 0) > low + 1 and s,
            240,
            "the desired replicas rising with the load",
        )
        assert high["scaling"]["action"] == "ScaleOut"
        peak = high["scaling"]["desiredReplicas"]
        wait_until(
            lambda: status(lab).get("scaling", {}).get("desiredReplicas", peak) < peak,
            300,
            "the desired replicas falling after the peak",
        )
    finally:
        replay.terminate()
        replay.wait(timeout=30)


def served_at(trace: list[tuple[float, float]], as_of: str) -> float:
    """The trace's demand at an RFC 3339 time (the row in force then)."""
    from datetime import datetime

    t = datetime.fromisoformat(as_of.replace("Z", "+00:00")).timestamp()
    return next(v for ts, v in reversed(trace) if ts <= t)


def test_prometheus_down_is_a_condition_and_recovery_clears_it(live_operator: RunningOperator, lab: Lab):
    """Run after the replay test (same profile): the recommendation stays, the decision goes."""
    before = status(lab)
    if condition(before, "MetricsAvailable").get("status") != "True":
        pytest.skip("needs the live profile of the replay test with metrics flowing")
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
        assert live_operator.alive()
    finally:
        lab.start_prometheus()
    wait_until(
        lambda: condition(status(lab), "MetricsAvailable").get("status") == "True",
        120,
        "MetricsAvailable=True once Prometheus is back",
    )
