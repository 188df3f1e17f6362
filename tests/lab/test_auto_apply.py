"""Guarded auto-apply on real parts: Deployments on kwok GPU nodes, `greenmatrix lab replay` serving
their metrics to the lab's Prometheus, `greenmatrix operator --auto-apply` scaling them through the
scale subresource of the real API server.

Each scenario has its own Deployment, WorkloadProfile and policy, and a trace built around the
capacity the engine predicts for one replica, so the replica counts it should lead to are known.
"""

from __future__ import annotations

import csv
import functools
import itertools
import math
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from greenmatrix_lab import Lab
from operator_helpers import RunningOperator, argocd_health, get_json, gpu_deployment, wait_until

from greenmatrix import WorkloadProfileSpec, plan

pytest_plugins = ["operator_fixtures"]

NAMESPACE = f"gm-auto-{secrets.token_hex(3)}"
STEP = 10.0
BACKFILL = 2 * 3600.0  # the forecaster calibrates its intervals on about an hour of its own errors
H100 = "NVIDIA-H100-80GB-HBM3"
PROFILE = {
    "task": "inference",
    "model": {"name": "meta-llama/Llama-3.1-8B-Instruct", "precision": "bf16", "framework": "vllm"},
    "inference": {
        "inputTokens": 1024,
        "outputTokens": 256,
        "concurrency": 32,
        "slo": {"tpotMs": 60, "ttftMs": 2000},
    },
}
SCALING = {
    "minReplicas": 1,
    "maxReplicas": 5,
    "maxScaleUpStep": 2,
    "maxScaleDownStep": 1,
    "cooldown": "20s",
    "scaleDownStabilization": "40s",
    "targetUtilization": 0.7,
}
OPERATOR_FLAGS = ["--scrape-interval", "5", "--startup", "10", "--history", str(int(BACKFILL))]
VERIFY_FLAGS = ["--verify-settle", "10", "--verify-window", "60"]


@functools.cache
def replica_capacity() -> float:
    """Requests/s one H100 replica serves, as the engine predicts it (p50)."""
    spec = WorkloadProfileSpec.model_validate(PROFILE)
    option = next(o for o in plan(spec, None, gpus=["H100-SXM-80GB"]).options if o.gpus_per_replica == 1)
    return PROFILE["inference"]["concurrency"] / (option.request_latency_ms.p50 / 1e3)


# --- the parts ------------------------------------------------------------------------------------


def apply(lab: Lab, *docs: dict[str, Any]) -> None:
    lab.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))


def deployment(namespace: str, name: str, replicas: int, paused: bool = False) -> dict[str, Any]:
    return gpu_deployment(
        namespace, name, replicas, H100, {"greenmatrix.io/paused": "true"} if paused else None
    )


def workload(namespace: str, name: str, **scaling: Any) -> list[dict[str, Any]]:
    """The WorkloadProfile of Deployment `name` and an Auto policy selecting only it."""
    return [
        {
            "apiVersion": "greenmatrix.io/v1alpha1",
            "kind": "OptimizationPolicy",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "mode": "Auto",
                "selector": {"matchLabels": {"scenario": name}},
                "evaluationInterval": "10s",
                "scaling": {**SCALING, **scaling},
            },
        },
        {
            "apiVersion": "greenmatrix.io/v1alpha1",
            "kind": "WorkloadProfile",
            "metadata": {"name": name, "namespace": namespace, "labels": {"scenario": name}},
            "spec": {**PROFILE, "targetRef": {"kind": "Deployment", "name": name}},
        },
    ]


def write_trace(path: Path, base: float, live: list[float], start: float) -> None:
    """An hour of history around `base` (requests/s), then `live`, one value per STEP."""
    rows = []
    t = start - BACKFILL
    while t < start:
        rows.append((t, base * (1 + 0.05 * math.sin(2 * math.pi * (t - start) / 1800.0))))
        t += STEP
    rows += [(start + i * STEP, v) for i, v in enumerate(live)]
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["timestamp", "value"])
        writer.writerows([(f"{t:.0f}", f"{v:.4f}") for t, v in rows])


@contextmanager
def serving(
    lab: Lab,
    namespace: str,
    name: str,
    tmp_path: Path,
    base: float,
    live: list[float],
    *extra: str,
    scaling: dict[str, Any] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """`greenmatrix lab replay` of the trace on the Deployment's pods, until the block ends. The
    WorkloadProfile goes first (the replay emulates the model it names), its Auto policy once the
    emulator serves live."""
    policy, profile = workload(namespace, name, **(scaling or {}))
    apply(lab, profile)
    trace = tmp_path / f"{name}.csv"
    write_trace(trace, base, live, time.time() + 5)
    record = tmp_path / f"{name}-served.csv"
    log = (tmp_path / f"{name}-replay.log").open("wb")
    replay = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "greenmatrix"),
            "lab",
            "replay",
            "--target",
            f"{namespace}/{name}",
            "--trace",
            str(trace),
            "--backfill",
            f"{int(BACKFILL)}s",
            "--record",
            str(record),
            *extra,
        ],
        env=lab.env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(
            lambda: record.exists() and ",live," in record.read_text(), 120, "the emulator serving live"
        )
        apply(lab, policy)
        yield replay
    finally:
        replay.terminate()
        replay.wait(timeout=30)
        log.close()


def start(lab: Lab, namespace: str, name: str, replicas: int, paused: bool = False) -> None:
    apply(lab, deployment(namespace, name, replicas, paused))
    wait_until(lambda: ready(lab, namespace, name) == replicas, 120, f"{replicas} ready pods of {name}")


def ready(lab: Lab, namespace: str, name: str) -> int:
    return get_json(lab, "deployment", name, "-n", namespace).get("status", {}).get("readyReplicas", 0)


def replicas(lab: Lab, namespace: str, name: str) -> int:
    return get_json(lab, "deployment", name, "-n", namespace)["spec"]["replicas"]


def status(lab: Lab, namespace: str, name: str) -> dict[str, Any]:
    return get_json(lab, "workloadprofile", name, "-n", namespace).get("status", {})


def condition(s: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in s.get("conditions", []) if c["type"] == type_), {})


def events(lab: Lab, namespace: str, name: str) -> list[tuple[str, str]]:
    found = get_json(lab, "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}")
    stamped = sorted(found["items"], key=lambda e: e["metadata"]["creationTimestamp"])
    return [(e["reason"], e["message"]) for e in stamped if e["involvedObject"]["kind"] == "WorkloadProfile"]


def until(lab: Lab, namespace: str, name: str, check: Any, timeout: float, what: str) -> Any:
    """wait_until, failing with what the WorkloadProfile's status said (its conditions, scaling, actions)."""
    try:
        return wait_until(check, timeout, what)
    except pytest.fail.Exception:
        s = status(lab, namespace, name)
        said = {k: s.get(k) for k in ("conditions", "observed", "scaling", "actions")}
        pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; status:\n{yaml.safe_dump(said)}")


def status_when(lab: Lab, namespace: str, name: str, holds: Any, timeout: float, what: str) -> dict[str, Any]:
    """The WorkloadProfile's status once `holds(status)` is true."""

    def check() -> dict[str, Any] | None:
        s = status(lab, namespace, name)
        return s if holds(s) else None

    return until(lab, namespace, name, check, timeout, what)


def decided_to_scale_out(lab: Lab, name: str) -> None:
    """Once the live loop wants more replicas, two more evaluations: time for an action to happen."""
    status_when(
        lab,
        NAMESPACE,
        name,
        lambda s: s.get("scaling", {}).get("desiredReplicas", 1) > 1,
        120,
        "a decision to scale out",
    )
    time.sleep(20)


def live_start(record: Path) -> float:
    with record.open() as rows:
        return min(float(row["wall_time"]) for row in csv.DictReader(rows) if row["phase"] == "live")


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def cleanup(lab: Lab, namespace: str, name: str) -> None:
    """Free the GPUs for the next scenario."""
    lab.kubectl("delete", "deployment,workloadprofile,optimizationpolicy", name, "-n", namespace, check=False)


@pytest.fixture(scope="module")
def auto_operator(crds: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningOperator]:
    from operator_fixtures import running_operator

    log = tmp_path_factory.mktemp("auto-operator") / "operator.log"
    flags = ["--prometheus-url", crds.prometheus_url, "--auto-apply", *OPERATOR_FLAGS, *VERIFY_FLAGS]
    with running_operator(crds, NAMESPACE, log, flags) as running:
        yield running


# --- the scenarios --------------------------------------------------------------------------------


def test_rising_then_falling_load_scales_within_the_guardrails(
    auto_operator: RunningOperator, lab: Lab, tmp_path: Path
) -> None:
    name, peak_steps = "rise", 18
    start(lab, NAMESPACE, name, 2)
    base = 0.9 * replica_capacity()
    live = [base] * 3 + [2.6 * replica_capacity()] * (peak_steps - 3) + [0.4 * replica_capacity()] * 40
    seen: list[int] = []  # the Deployment's replicas as polled

    def polled(enough: Any) -> bool:
        seen.append(replicas(lab, NAMESPACE, name))
        return bool(enough(seen[-1]))

    try:
        with serving(lab, NAMESPACE, name, tmp_path, base, live):
            until(lab, NAMESPACE, name, lambda: polled(lambda n: n >= 4), 240, "scaled out to the peak")
            until(
                lab, NAMESPACE, name, lambda: polled(lambda n: n <= 2), 360, "scaled back in after the peak"
            )
        dropped = live_start(tmp_path / f"{name}-served.csv") + peak_steps * STEP
        s = status(lab, NAMESPACE, name)
        said = [r for r, _ in events(lab, NAMESPACE, name) if r in ("ScaledOut", "ScaledIn")]
    finally:
        cleanup(lab, NAMESPACE, name)
    actions = list(reversed(s["actions"]))  # oldest first
    moves = [(a["fromReplicas"], a["toReplicas"]) for a in actions]
    for a in actions:
        assert a["phase"] == "Applied", a
        assert SCALING["minReplicas"] <= a["toReplicas"] <= SCALING["maxReplicas"], a
        assert (
            -SCALING["maxScaleDownStep"] <= a["toReplicas"] - a["fromReplicas"] <= SCALING["maxScaleUpStep"]
        ), a
    times = [epoch(a["time"]) for a in actions]
    # The cooldown is 20s; the recorded times are whole seconds, so 20s apart may read 19.
    assert all(b - a >= 19 for a, b in itertools.pairwise(times)), times
    # Scale-in only after a stabilisation window (40s) of recommendations below the current count.
    # A scale-out was recommended at its own time, so no scale-in comes within 40s of one.
    outs = [t for t, (a, b) in zip(times, moves, strict=True) if b > a]
    for t, (a, b) in zip(times, moves, strict=True):
        if b < a:
            assert t >= max(o for o in outs if o < t) + 40 - 1, (times, moves)
    # Below what the peak needs (2.6 replicas' capacity at 0.7 utilisation: 4), recommendations fall
    # only once the load dropped: the first scale-in under 4 comes a window after the drop. An
    # overshoot to 5 may come back to 4 during the peak.
    first_under_peak = min(t for t, (a, b) in zip(times, moves, strict=True) if b < a and b < 4)
    assert first_under_peak >= dropped + 40 - 1, (first_under_peak - dropped, moves)
    # Every change the Deployment went through is an action in the status and an Event.
    went = [b for a, b in itertools.pairwise(seen) if a != b]
    assert went and went == [to for _, to in moves][-len(went) :], (went, moves)
    assert len(said) == len(moves), (said, moves)
    metrics = auto_operator.metrics()
    assert metrics.get('greenmatrix_operator_actions_total{result="Applied"}', 0) >= len(moves)
    count = metrics.get("greenmatrix_operator_action_patch_seconds_count", 0)
    assert count >= len(moves)
    mean = metrics["greenmatrix_operator_action_patch_seconds_sum"] / count
    sys.stderr.write(f"auto-apply: actions {moves}; decision to patch {mean * 1e3:.0f} ms on average\n")
    # The same trace under `greenmatrix autoscale replay`: the lab run should cost about the same.
    lab_hours, lab_overload, span = lab_usage(tmp_path / f"{name}-served.csv")
    replay_hours, replay_overload = replay_usage(tmp_path, name, span)
    sys.stderr.write(
        f"auto-apply on the lab: {lab_hours:.3f} GPU-hours, {lab_overload:.1f} overload minutes;"
        f" autoscale replay of the same trace: {replay_hours:.3f} GPU-hours, {replay_overload:.1f}\n"
    )
    assert 0.5 < lab_hours / replay_hours < 2.0, (lab_hours, replay_hours)


def lab_usage(record: Path) -> tuple[float, float, tuple[float, float]]:
    """GPU-hours the Deployment's Ready pods ran and minutes the demand exceeded their capacity, over the
    live part of the replay (its record: one row per pod per step), and the trace time it spans."""
    pods: dict[float, int] = {}
    demand: dict[float, float] = {}
    trace_times = []
    with record.open() as rows:
        for row in csv.DictReader(rows):
            if row["phase"] == "live":
                t = float(row["wall_time"])
                pods[t] = pods.get(t, 0) + 1
                demand[t] = float(row["demand"])
                trace_times.append(float(row["trace_time"]))
    times = sorted(pods)
    hours = overload = 0.0
    for a, b in itertools.pairwise(times):
        hours += pods[a] * (b - a) / 3600
        overload += (b - a) / 60 if demand[a] > pods[a] * replica_capacity() else 0.0
    return hours, overload, (min(trace_times), max(trace_times))


def replay_usage(tmp_path: Path, name: str, span: tuple[float, float]) -> tuple[float, float]:
    """The same over the same trace time under `greenmatrix autoscale replay` with the policy."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(workload(NAMESPACE, name)[0]))
    out = tmp_path / "replayed.csv"
    subprocess.run(
        [
            str(Path(sys.executable).parent / "greenmatrix"),
            "autoscale",
            "replay",
            "--trace",
            str(tmp_path / f"{name}.csv"),
            "--capacity",
            f"{replica_capacity():.4f}",
            "--startup",
            "10s",
            "--policy",
            str(policy),
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    with out.open() as rows:
        replayed = list(csv.DictReader(rows))
    live = [r for r in replayed if span[0] - STEP < float(r["timestamp"]) <= span[1]]
    hours = sum(int(r["replicas"]) for r in live) * STEP / 3600
    # A replica asked for serves one step (the startup) later.
    overload = sum(
        STEP / 60
        for before, now in itertools.pairwise(live)
        if float(now["value"]) > int(before["replicas"]) * replica_capacity()
    )
    return hours, overload


def test_an_hpa_on_the_same_deployment_means_no_action_and_conflict(
    auto_operator: RunningOperator, lab: Lab, tmp_path: Path
) -> None:
    name = "hpa"
    start(lab, NAMESPACE, name, 1)
    cpu = {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "theirs", "namespace": NAMESPACE},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": 1,
            "maxReplicas": 3,
            "metrics": [{"type": "Resource", "resource": cpu}],
        },
    }
    apply(lab, hpa)
    load = 2.5 * replica_capacity()
    try:
        with serving(lab, NAMESPACE, name, tmp_path, load, [load] * 30):
            decided_to_scale_out(lab, name)
            obj = get_json(lab, "workloadprofile", name, "-n", NAMESPACE)
            s = obj["status"]
            assert replicas(lab, NAMESPACE, name) == 1
            reasons = [r for r, _ in events(lab, NAMESPACE, name)]
    finally:
        lab.kubectl("delete", "hpa", "theirs", "-n", NAMESPACE, check=False)
        cleanup(lab, NAMESPACE, name)
    conflict, auto = condition(s, "Conflict"), condition(s, "AutoApply")
    assert (conflict["status"], conflict["reason"]) == ("True", "HPAPresent")
    assert "HorizontalPodAutoscaler theirs" in conflict["message"]
    assert (auto["status"], auto["reason"]) == ("False", "Conflict")
    assert "actions" not in s
    assert reasons.count("HPAPresent") == 1, reasons
    health = argocd_health(obj)  # Argo CD's check on this very object
    assert health["status"] == "Degraded" and "HPAPresent" in health["message"]


def test_a_paused_target_is_not_scaled_until_unpaused(
    auto_operator: RunningOperator, lab: Lab, tmp_path: Path
) -> None:
    name = "paused"
    start(lab, NAMESPACE, name, 1, paused=True)
    load = 2.5 * replica_capacity()
    try:
        with serving(lab, NAMESPACE, name, tmp_path, load, [load] * 40):
            decided_to_scale_out(lab, name)
            assert replicas(lab, NAMESPACE, name) == 1
            obj = get_json(lab, "workloadprofile", name, "-n", NAMESPACE)
            said = condition(obj["status"], "AutoApply")
            assert (said["status"], said["reason"]) == ("False", "Paused")
            assert "the target" in said["message"]
            assert argocd_health(obj)["status"] == "Suspended"
            lab.kubectl("annotate", "deployment", name, "-n", NAMESPACE, "greenmatrix.io/paused-")
            until(
                lab,
                NAMESPACE,
                name,
                lambda: replicas(lab, NAMESPACE, name) > 1,
                60,
                "scaled out once unpaused",
            )
    finally:
        cleanup(lab, NAMESPACE, name)


def test_no_action_while_prometheus_is_down(auto_operator: RunningOperator, lab: Lab, tmp_path: Path) -> None:
    name = "blind"
    start(lab, NAMESPACE, name, 1)
    low, high = 0.5 * replica_capacity(), 2.5 * replica_capacity()
    try:
        with serving(lab, NAMESPACE, name, tmp_path, low, [low] * 6 + [high] * 40):
            status_when(
                lab,
                NAMESPACE,
                name,
                lambda s: condition(s, "AutoApply").get("status") == "True",
                120,
                "auto-apply on",
            )
            lab.stop_component("prometheus")
            try:
                status_when(
                    lab,
                    NAMESPACE,
                    name,
                    lambda s: condition(s, "MetricsAvailable").get("status") == "False",
                    60,
                    "MetricsAvailable=False",
                )
                before = replicas(lab, NAMESPACE, name)
                time.sleep(30)  # the demand rose meanwhile; blind, nothing is done about it
                s = status(lab, NAMESPACE, name)
                assert replicas(lab, NAMESPACE, name) == before
                said = condition(s, "AutoApply")
                assert (said["status"], said["reason"]) == ("False", "MetricsUnavailable")
            finally:
                lab.start_prometheus()
            wait_until(
                lambda: replicas(lab, NAMESPACE, name) > before, 180, "scaled out with Prometheus back"
            )
    finally:
        cleanup(lab, NAMESPACE, name)


def test_a_scale_in_that_breaks_the_slo_is_rolled_back(
    auto_operator: RunningOperator, lab: Lab, tmp_path: Path
) -> None:
    name = "cut"
    start(lab, NAMESPACE, name, 3)
    load = 1.2 * replica_capacity()  # two replicas serve it at the target utilisation: three are one too many
    cut = ["--capacity-cut-on-scale-in", "0.4"]
    try:
        # A long cooldown: only the rollback (which ignores it) may follow the scale-in.
        rules = {"targetUtilization": 0.8, "cooldown": "300s"}
        with serving(lab, NAMESPACE, name, tmp_path, load, [load] * 60, *cut, scaling=rules):
            until(lab, NAMESPACE, name, lambda: replicas(lab, NAMESPACE, name) == 2, 240, "the scale-in to 2")
            s = status_when(
                lab,
                NAMESPACE,
                name,
                lambda s: condition(s, "RolledBack").get("status") == "True",
                240,
                "RolledBack=True",
            )
            assert replicas(lab, NAMESPACE, name) == 3
            reasons = [r for r, _ in events(lab, NAMESPACE, name)]
    finally:
        cleanup(lab, NAMESPACE, name)
    rollback, scale_in = s["actions"][:2]
    assert rollback["kind"] == "Rollback" and (rollback["fromReplicas"], rollback["toReplicas"]) == (2, 3)
    assert (scale_in["fromReplicas"], scale_in["toReplicas"]) == (3, 2)
    assert scale_in["verification"]["result"] == "Regressed", scale_in
    assert "TTFT p95" in scale_in["verification"]["reason"]
    assert rollback["cooldownSeconds"] > 300, "the cooldown backs off"
    assert condition(s, "RolledBack")["reason"] == "ScaleInRegressed"
    assert "RolledBack" in reasons


def test_a_crash_right_after_the_intent_leaves_exactly_one_action(crds: Lab, tmp_path: Path) -> None:
    from operator_fixtures import running_operator

    lab, namespace, name = crds, f"gm-crash-{secrets.token_hex(3)}", "crash"
    flags = ["--prometheus-url", crds.prometheus_url, "--auto-apply", *OPERATOR_FLAGS]
    log = tmp_path / "operator.log"
    fault = {"GREENMATRIX_FAULT_CRASH_AFTER_INTENT": "1"}
    load = 2.5 * replica_capacity()  # beyond what 3 replicas (maxReplicas) serve: one action, 1 -> 3
    with running_operator(lab, namespace, log, flags, environment=fault) as first:
        start(lab, namespace, name, 1)
        generation = get_json(lab, "deployment", name, "-n", namespace)["metadata"]["generation"]
        with serving(lab, namespace, name, tmp_path, load, [load] * 40, scaling={"maxReplicas": 3}):
            wait_until(lambda: not first.alive(), 120, "the operator killed right after recording an intent")
            intent = status(lab, namespace, name)["lastAction"]
            assert intent["phase"] == "Intended" and replicas(lab, namespace, name) == 1
            assert (intent["fromReplicas"], intent["toReplicas"]) == (1, 3)
            with running_operator(lab, namespace, log, flags, fresh_namespace=False):
                status_when(
                    lab,
                    namespace,
                    name,
                    lambda s: s["lastAction"]["phase"] == "Applied",
                    60,
                    "the intent settled by the restarted operator",
                )
                time.sleep(25)  # more evaluations: at maxReplicas, nothing else to do
                s = status(lab, namespace, name)
                reasons = [r for r, _ in events(lab, namespace, name)]
                target = get_json(lab, "deployment", name, "-n", namespace)
    assert [a["id"] for a in s["actions"]] == [intent["id"]], "exactly one action"
    assert target["spec"]["replicas"] == 3
    assert target["metadata"]["generation"] == generation + 1, "patched once"
    assert reasons.count("ScaledOut") == 1, reasons
