"""The replay's parts that need no lab: the emulated replica, its exposition, the trace and its clock.

(They live beside the lab tests they serve; none of them uses the `lab` fixture, so they run in
seconds without a lab.)
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from greenmatrix_lab.emulation import Replica, ReplicaModel
from greenmatrix_lab.exposition import BUCKETS, PodIdentity, render, samples
from greenmatrix_lab.prometheus import WORKLOAD_JOB, with_workloads, write_config
from greenmatrix_lab.trace import Timeline, Trace, TraceError, parse_duration, read_trace

MODEL = ReplicaModel(
    model_name="meta-llama/Llama-3.1-8B-Instruct",
    gpu="H100-SXM-80GB",
    gpus=2,
    ttft_s=0.14,
    tpot_s=0.0085,
    concurrency=8,
    input_tokens=512,
    output_tokens=128,
    tdp_watts=700.0,
    memory_mib=81559.0,
    capacity=6.5,
)
IDENTITY = PodIdentity(
    "ns", "llm-5dc86586b5-l8bff", "gpu-h100-0", "vllm", (2, 3), "NVIDIA-H100-80GB-HBM3", "550"
)
LOADS = [1.0] * 20 + [10.0] * 30 + [0.5] * 60 + [4.0] * 10


def _values(replica: Replica) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (name, tuple(sorted(labels.items()))): value for name, labels, value in samples(replica, IDENTITY)
    }


def test_counters_never_go_down_and_buckets_never_exceed_their_count() -> None:
    replica = Replica(MODEL, "ns/llm", BUCKETS)
    before = _values(replica)
    for second, load in enumerate(LOADS):
        replica.advance(load, 1.0, float(second))
        now = _values(replica)
        for (name, labels), value in now.items():
            if name.endswith(("_total", "_bucket", "_count", "_sum", "CONSUMPTION")):
                assert value >= before[(name, labels)], name
        for name in ("vllm:time_to_first_token_seconds", "vllm:e2e_request_latency_seconds"):
            buckets = [v for (n, _), v in now.items() if n == f"{name}_bucket"]
            count = next(v for (n, _), v in now.items() if n == f"{name}_count")
            assert buckets == sorted(buckets) and buckets[-1] == count
        before = now


def test_overload_queues_the_excess_and_serves_at_capacity_until_it_drains() -> None:
    replica = Replica(MODEL, "ns/llm", BUCKETS)
    calm = replica.advance(3.0, 1.0, 0.0)
    assert calm.served == pytest.approx(3.0) and calm.waiting == 0
    assert calm.running == pytest.approx(calm.served * calm.e2e_s)  # Little's law
    ticks = [replica.advance(10.0, 1.0, float(s)) for s in range(1, 21)]
    assert all(t.served == pytest.approx(MODEL.capacity) for t in ticks)
    assert ticks[-1].waiting == pytest.approx(20 * (10.0 - MODEL.capacity))
    assert ticks[-1].ttft_s > calm.ttft_s + ticks[-1].waiting / MODEL.capacity * 0.99
    assert ticks[-1].kv_usage > calm.kv_usage
    draining = [replica.advance(1.0, 1.0, float(s)) for s in range(21, 61)]
    assert draining[0].served == pytest.approx(MODEL.capacity)  # the queue first, at full speed
    assert draining[-1].waiting == 0 and draining[-1].served == pytest.approx(1.0)


def test_power_and_utilisation_follow_the_busy_fraction() -> None:
    replica = Replica(MODEL, "ns/llm", BUCKETS)
    idle, busy = replica.advance(0.0, 1.0, 0.0), replica.advance(20.0, 1.0, 1.0)
    for gpu in idle.gpus:
        assert gpu.util_percent <= 2 and 0.29 * 700 <= gpu.watts <= 0.32 * 700
    for gpu in busy.gpus:
        assert gpu.util_percent >= 95 and 0.6 * 700 <= gpu.watts <= 700


def test_exposition_names_and_labels_are_the_exporters() -> None:
    replica = Replica(MODEL, "ns/llm", BUCKETS)
    replica.advance(5.0, 10.0, 0.0)
    text = render(samples(replica, IDENTITY))
    engine = 'model_name="meta-llama/Llama-3.1-8B-Instruct",engine="0"'
    assert f'vllm:request_success_total{{{engine},finished_reason="stop"}} 50\n' in text
    assert "# TYPE vllm:time_to_first_token_seconds histogram" in text
    les = re.findall(r'vllm:time_per_output_token_seconds_bucket\{[^}]*le="([^"]+)"', text)
    assert les[:3] == ["0.01", "0.025", "0.05"] and les[-2:] == ["80.0", "+Inf"]
    dcgm = re.findall(r"^DCGM_FI_DEV_POWER_USAGE\{(.*)\} ", text, re.MULTILINE)
    assert len(dcgm) == 2  # one per GPU of the pod
    labels = dict(re.findall(r'(\w+)="([^"]*)"', dcgm[0]))
    assert labels["gpu"] == "2" and labels["device"] == "nvidia2" and labels["UUID"].startswith("GPU-")
    assert labels["modelName"] == "NVIDIA H100 80GB HBM3" and labels["Hostname"] == "gpu-h100-0"
    assert (labels["namespace"], labels["pod"], labels["container"]) == ("ns", IDENTITY.pod, "vllm")


def test_promtool_parses_the_exposition() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian's prometheus package) is not installed")
    replica = Replica(MODEL, "ns/llm", BUCKETS)
    replica.advance(5.0, 10.0, 0.0)
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=render(samples(replica, IDENTITY)),
        capture_output=True,
        text=True,
    )
    # Lint findings are the exporters' own names (colons, camelCase labels); a parse error is ours.
    assert "error" not in (result.stdout + result.stderr).lower()
    assert all(
        "':'" in line or "camelCase" in line or "_total" in line for line in result.stderr.splitlines()
    )


def test_trace_demand_is_linear_between_rows_and_clamped_outside() -> None:
    trace = Trace((0.0, 60.0, 120.0), (10.0, 20.0, 0.0))
    assert [trace.demand(t) for t in (-5, 0, 30, 90, 500)] == [10.0, 10.0, 15.0, 10.0, 0.0]
    assert trace.step == 60.0 and trace.rows_between(0, 60) == 2


def test_a_trace_day_at_speedup_60_is_24_wall_minutes_ending_where_live_serving_starts() -> None:
    day = Trace(tuple(float(60 * i) for i in range(2 * 1440)), tuple(1.0 for _ in range(2 * 1440)))
    timeline = Timeline(day, speedup=60, backfill=86400, live_wall=1_000_000.0)
    assert timeline.history_start_wall == 1_000_000.0 - 24 * 60
    assert timeline.wall(86400) == 1_000_000.0 and timeline.tau(1_000_060.0) == 86400 + 3600
    with pytest.raises(TraceError, match=r"--backfill .* covers the whole trace"):
        Timeline(day, speedup=60, backfill=2 * 86400, live_wall=0.0)
    with pytest.raises(TraceError, match="--speedup must be > 0"):
        Timeline(day, speedup=0, backfill=0, live_wall=0.0)


def test_a_bad_trace_row_is_named_by_its_line(tmp_path: Path) -> None:
    path = tmp_path / "trace.csv"
    path.write_text(
        "timestamp,value\n2026-01-01T00:00:00Z,1\n\n2026-01-01T00:01:00Z,-3\n2026-01-01T00:02:00Z,1\n"
    )
    with pytest.raises(TraceError, match=r"row 4, column value: -3 is negative"):
        read_trace(path)
    path.write_text("timestamp,value\n0,1\n60,2\n120,3\n")
    assert read_trace(path).values == (1.0, 2.0, 3.0)


def test_durations() -> None:
    assert [parse_duration(t) for t in ("90s", "6h", "1d12h", "1.5m")] == [90, 6 * 3600, 36 * 3600, 90]
    with pytest.raises(TraceError, match="--backfill: '1 day' is not a duration"):
        parse_duration("1 day")


def test_the_workloads_job_keeps_the_pods_labels_and_history_may_land_in_the_past(tmp_path: Path) -> None:
    config_path = tmp_path / "prometheus.yml"
    write_config(config_path, tmp_path / "targets", 9090, 6443, tmp_path / "pki")
    config = yaml.safe_load(config_path.read_text())
    [job] = [j for j in config["scrape_configs"] if j["job_name"] == WORKLOAD_JOB]
    assert job["honor_labels"] is True
    assert job["file_sd_configs"][0]["files"] == [str(tmp_path / "targets" / WORKLOAD_JOB / "*.json")]
    assert config["storage"]["tsdb"]["out_of_order_time_window"]
    assert with_workloads(config, tmp_path / "targets") == config  # a lab already amended stays as it is
