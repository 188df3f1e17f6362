"""`greenmatrix lab replay` against the lab: a Deployment on kwok H100 nodes, its WorkloadProfile,
a crafted trace served as vLLM and DCGM metrics, read back through Prometheus's own PromQL.

The live trace (5 s rows, speedup 1) has three phases of 40 s: 6 requests/s over two replicas
(well under their capacity), 20 requests/s (over it: requests queue), then 6 again while the
Deployment is scaled to three. Demand ramps linearly over the 5 s between two phases' rows, so
each check asks Prometheus about the last moment before a ramp, once that moment has passed.
"""

from __future__ import annotations

import itertools
import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from greenmatrix_lab import Lab
from greenmatrix_lab.prometheus import workload_targets_dir
from greenmatrix_lab.replay import Replay
from greenmatrix_lab.trace import Trace
from operator_helpers import wait_until

pytest_plugins = ["operator_fixtures"]

NAMESPACE = "replay-test"
BACKFILL_NAMESPACE = "replay-backfill"
DEPLOYMENT = "llm"
PODS = f'pod=~"{DEPLOYMENT}-[a-z0-9]+-[a-z0-9]+"'
H100 = "NVIDIA-H100-80GB-HBM3"
H100_TDP_W = 700.0
PHASE_S = 40
LOW, HIGH = 6.0, 20.0
GREENMATRIX = str(Path(sys.executable).parent / "greenmatrix")


def _deployment(namespace: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": DEPLOYMENT, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": DEPLOYMENT}},
            "template": {
                "metadata": {"labels": {"app": DEPLOYMENT}},
                "spec": {
                    "nodeSelector": {"nvidia.com/gpu.product": H100},
                    "containers": [
                        {
                            "name": "vllm",
                            "image": "vllm/vllm-openai:v0.10.2",
                            "resources": {"limits": {"nvidia.com/gpu": "1"}},
                        }
                    ],
                },
            },
        },
    }


PROFILE = {
    "apiVersion": "greenmatrix.io/v1alpha1",
    "kind": "WorkloadProfile",
    "metadata": {"name": "llm", "namespace": NAMESPACE},
    "spec": {
        "task": "inference",
        "model": {"name": "meta-llama/Llama-3.1-8B-Instruct", "precision": "bf16", "framework": "vllm"},
        "inference": {"inputTokens": 512, "outputTokens": 128, "concurrency": 8},
        "targetRef": {"kind": "Deployment", "name": DEPLOYMENT},
    },
}


def _ready_pods(lab: Lab, namespace: str) -> list[dict[str, Any]]:
    pods = json.loads(
        lab.kubectl("get", "pods", "-n", namespace, "-l", f"app={DEPLOYMENT}", "-o", "json").stdout
    )
    return [
        p
        for p in pods["items"]
        if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
    ]


def _fresh_deployment(lab: Lab, namespace: str, replicas: int) -> None:
    lab.kubectl("delete", "namespace", namespace, "--ignore-not-found", "--timeout=120s")
    lab.kubectl("create", "namespace", namespace)
    lab.kubectl("apply", "-f", "-", input=yaml.safe_dump(_deployment(namespace, replicas)))
    wait_until(
        lambda: len(_ready_pods(lab, namespace)) == replicas, timeout=60, what=f"{replicas} Ready pods"
    )


def _query(lab: Lab, promql: str, at: float) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"query": promql, "time": f"{at:.3f}"})
    with urllib.request.urlopen(f"{lab.prometheus_url}/api/v1/query?{query}", timeout=30) as response:
        return json.load(response)["data"]["result"]


def _scalar(lab: Lab, promql: str, at: float) -> float:
    result = _query(lab, promql, at)
    assert len(result) == 1, f"{promql} at {at}: {result}"
    return float(result[0]["value"][1])


def _now_equals(lab: Lab, promql: str, value: float) -> bool:
    result = _query(lab, promql, time.time())
    return len(result) == 1 and float(result[0]["value"][1]) == value


def _range(lab: Lab, promql: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"query": promql, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{lab.prometheus_url}/api/v1/query_range?{query}", timeout=30) as response:
        return json.load(response)["data"]["result"]


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


# -- the lab runs the Deployment's pods ------------------------------------------------------


@pytest.fixture(scope="module")
def deployment(crds: Lab) -> Lab:
    lab = crds
    _fresh_deployment(lab, NAMESPACE, replicas=2)
    lab.kubectl("apply", "-f", "-", input=yaml.safe_dump(PROFILE))
    return lab


def test_controller_manager_and_kwok_run_the_gpu_deployment(deployment: Lab) -> None:
    pods = _ready_pods(deployment, NAMESPACE)
    assert len(pods) == 2
    nodes = {p["spec"]["nodeName"] for p in pods}
    for node in nodes:
        labels = json.loads(deployment.kubectl("get", "node", node, "-o", "json").stdout)["metadata"][
            "labels"
        ]
        assert labels["nvidia.com/gpu.product"] == H100
    assert all(p["status"]["phase"] == "Running" for p in pods)


# -- a live replay ---------------------------------------------------------------------------


def _live_trace() -> Trace:
    times, values = [], []
    for index, level in enumerate((LOW, HIGH, LOW)):
        for k in range(PHASE_S // 5):
            times.append(float(index * PHASE_S + k * 5))
            values.append(level)
    times.append(3.0 * PHASE_S)
    values.append(LOW)
    return Trace(tuple(times), tuple(values))


@pytest.fixture(scope="module")
def live(deployment: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replay]:
    record = tmp_path_factory.mktemp("replay") / "served.csv"
    replay = Replay(deployment, f"{NAMESPACE}/{DEPLOYMENT}", _live_trace(), speedup=1, record=record)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            replay.run()
        except BaseException as error:  # surfaced by the tests below
            failures.append(error)
            replay.started.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    replay.started.wait(timeout=120)
    assert not failures, failures
    yield replay
    replay.stop()
    thread.join(timeout=30)


def _live_start(replay: Replay) -> float:
    assert replay.timeline is not None
    return replay.timeline.live_wall


def test_request_rate_in_prometheus_is_the_trace_demand(live: Replay, deployment: Lab) -> None:
    at = _live_start(live) + PHASE_S - 5
    _sleep_until(at + 2)
    rate = _scalar(
        deployment, f'sum(rate(vllm:request_success_total{{namespace="{NAMESPACE}",{PODS}}}[30s]))', at
    )
    assert rate == pytest.approx(LOW, rel=0.10)
    assert rate == pytest.approx(live.served_rate(at - 30, at), rel=0.10)
    assert live.profile_name == "llm"


def test_dcgm_series_carry_the_workload_pods_labels(live: Replay, deployment: Lab) -> None:
    at = _live_start(live) + PHASE_S - 5
    _sleep_until(at + 2)
    pods = {row.pod: row.node for row in live.served}
    for metric in ("DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED"):
        series = _query(deployment, f'{metric}{{namespace="{NAMESPACE}",{PODS}}}', at)
        assert {s["metric"]["pod"]: s["metric"]["Hostname"] for s in series} == pods
        for s in series:
            assert not [k for k in s["metric"] if k.startswith("exported_")], s["metric"]
            assert s["metric"]["modelName"] == "NVIDIA H100 80GB HBM3"
            assert s["metric"]["container"] == "vllm"
    power = _query(deployment, f'DCGM_FI_DEV_POWER_USAGE{{namespace="{NAMESPACE}"}}', at)
    assert all(0.3 * H100_TDP_W <= float(s["value"][1]) <= H100_TDP_W for s in power)
    energy = f'rate(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{{namespace="{NAMESPACE}",{PODS}}}[30s]) / 1000'
    for watts, joules in zip(
        sorted(float(s["value"][1]) for s in power),
        sorted(float(s["value"][1]) for s in _query(deployment, energy, at)),
        strict=True,
    ):
        assert joules == pytest.approx(watts, rel=0.10)


def test_overload_queues_caps_the_rate_and_raises_ttft(live: Replay, deployment: Lab) -> None:
    calm, busy = _live_start(live) + PHASE_S - 5, _live_start(live) + 2 * PHASE_S - 5
    _sleep_until(busy + 2)
    selector = f'namespace="{NAMESPACE}",{PODS}'
    rate = _scalar(deployment, f"sum(rate(vllm:request_success_total{{{selector}}}[30s]))", busy)
    served = live.served_rate(busy - 30, busy)
    assert rate == pytest.approx(served, rel=0.10)
    assert rate < 0.8 * HIGH  # capped at the replicas' capacity, below the demand
    buckets = f"rate(vllm:time_to_first_token_seconds_bucket{{{selector}}}[30s])"
    ttft = f"histogram_quantile(0.5, sum by (le) ({buckets}))"
    calm_ttft, busy_ttft = _scalar(deployment, ttft, calm), _scalar(deployment, ttft, busy)
    predicted = {model.ttft_s for model in live.models.values()}
    assert 0.3 * min(predicted) < calm_ttft < 3 * max(predicted)
    assert busy_ttft > 5 * calm_ttft
    assert _scalar(deployment, f"sum(vllm:num_requests_waiting{{{selector}}})", busy) > 0
    assert _scalar(deployment, f"sum(vllm:num_requests_waiting{{{selector}}})", calm) == 0


def test_scaling_the_deployment_adds_a_scrape_target_and_counts_the_replicas(
    live: Replay, deployment: Lab
) -> None:
    deployment.kubectl("scale", "deployment", DEPLOYMENT, "-n", NAMESPACE, "--replicas=3")
    wait_until(lambda: len(live.pods) == 3, timeout=60, what="a third emulated pod")
    up = f'count(up{{job="workloads",namespace="{NAMESPACE}",{PODS}}} == 1)'
    wait_until(lambda: _now_equals(deployment, up, 3), timeout=60, what="three scrape targets up")
    for metric in ("kube_deployment_spec_replicas", "kube_deployment_status_replicas_ready"):
        replicas = f'{metric}{{namespace="{NAMESPACE}",deployment="{DEPLOYMENT}"}}'
        wait_until(lambda q=replicas: _now_equals(deployment, q, 3), timeout=60, what=f"{metric} 3")
    first_two = {row.pod for row in live.served if row.wall_time < _live_start(live) + PHASE_S}
    [third] = set(live.pods) - first_two
    assert _query(
        deployment, f'vllm:num_requests_running{{namespace="{NAMESPACE}",pod="{third}"}}', time.time()
    )


# -- history ---------------------------------------------------------------------------------


def test_backfill_writes_the_trace_as_history_that_live_counters_continue(crds: Lab) -> None:
    lab = crds
    _fresh_deployment(lab, BACKFILL_NAMESPACE, replicas=1)
    # 14 hours of a minute-step trace at 720x: 12 h of history (60 s of wall clock), 10 s live.
    times = tuple(float(60 * i) for i in range(14 * 60 + 1))
    values = tuple(4.0 + 2.0 * ((i // 60) % 3) for i in range(len(times)))
    replay = Replay(
        lab, f"{BACKFILL_NAMESPACE}/{DEPLOYMENT}", Trace(times, values), speedup=720, backfill=12 * 3600
    )
    summary = replay.run()
    timeline = replay.timeline
    assert timeline is not None and not summary.stopped_early
    assert summary.backfill_points == 12
    history = [row for row in replay.served if row.phase == "backfill"]
    pod, instance = history[0].pod, history[0].instance
    labels = f'namespace="{BACKFILL_NAMESPACE}",pod="{pod}",instance="{instance}",finished_reason="stop"'
    counter = f"vllm:request_success_total{{{labels}}}"
    first, last = history[0].wall_time, history[-1].wall_time
    [series] = _range(lab, counter, first, last, 5)
    points = [(float(t), float(v)) for t, v in series["values"]]
    assert len(points) == summary.backfill_points
    demand = {round(row.wall_time): row.demand for row in history}
    for (t0, v0), (t1, v1) in itertools.pairwise(points):
        assert (v1 - v0) / (t1 - t0) == pytest.approx(demand[round(t1)], rel=0.10)
    # The live scrapes continue the same series: one counter, never going down across the seam.
    [whole] = _range(lab, counter, first, timeline.end_wall, 5)
    values_over_time = [float(v) for _, v in whole["values"]]
    assert len(values_over_time) > len(points)
    assert values_over_time == sorted(values_over_time)


def test_ctrl_c_stops_cleanly_with_a_summary_and_no_scrape_targets_left(
    deployment: Lab, tmp_path: Path
) -> None:
    trace, record = tmp_path / "trace.csv", tmp_path / "served.csv"
    trace.write_text("timestamp,value\n" + "".join(f"{60 * i},5\n" for i in range(61)))
    target = f"{NAMESPACE}/{DEPLOYMENT}"
    process = subprocess.Popen(
        [GREENMATRIX, "lab", "replay", "--target", target, "--trace", str(trace), "--record", str(record)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=deployment.env,
    )
    try:
        wait_until(lambda: record.exists() and ",live," in record.read_text(), timeout=120, what="a live row")
        targets = workload_targets_dir(deployment.layout.scrape_targets_dir)
        assert list(targets.glob(f"{NAMESPACE}.*.json"))
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert re.fullmatch(
        rf"replayed \d+ trace rows on {NAMESPACE}/{DEPLOYMENT} in .*; stopped early\)\n", stdout
    )
    assert not list(targets.glob(f"{NAMESPACE}.*.json"))


# -- bad input ---------------------------------------------------------------------------------


def _replay_cli(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GREENMATRIX, "lab", "replay", *args],
        capture_output=True,
        text=True,
        env=lab.env,
        timeout=120,
        check=False,
    )


def test_a_missing_deployment_is_one_line_naming_target(lab: Lab, tmp_path: Path) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text("timestamp,value\n0,1\n5,2\n10,3\n")
    result = _replay_cli(lab, "--target", "replay-test/nothing-here", "--trace", str(trace))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --target replay-test/nothing-here: no Deployment 'nothing-here' in namespace 'replay-test'"
    ]


def test_a_bad_trace_row_is_one_line_naming_row_and_column(lab: Lab, tmp_path: Path) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text("timestamp,value\n0,1\n5,lots\n10,3\n")
    result = _replay_cli(lab, "--target", f"{NAMESPACE}/{DEPLOYMENT}", "--trace", str(trace))
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: --trace") and "row 3, column value: 'lots' is not a number" in line


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ("--backfill", "1h"),
            "error: --backfill 3600s covers the whole trace (10s): nothing would be served live",
        ),
        (
            ("--backfill", "a while"),
            "error: --backfill: 'a while' is not a duration (write e.g. 90s, 30m, 6h, 1d)",
        ),
        (("--speedup", "0"), "error: --speedup must be > 0, got 0"),
    ],
)
def test_bad_timing_is_one_line_naming_the_option(
    lab: Lab, tmp_path: Path, options: tuple[str, ...], message: str
) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text("timestamp,value\n0,1\n5,2\n10,3\n")
    result = _replay_cli(lab, "--target", f"{NAMESPACE}/{DEPLOYMENT}", "--trace", str(trace), *options)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [message]
