"""The operator at scale on the lab: N WorkloadProfiles created at a steady rate across namespaces.

    .venv/bin/python hack/bench_scale.py --count 1000 [--rate 50] [--namespaces 10]

Runs, side by side on the same objects: `greenmatrix operator` (recommendations only, no Prometheus)
and a no-op Kopf operator watching the same two kinds (an event handler that does nothing), so the
ratio of their CPU and memory is the figure, not the machine's speed. Reports:

- apply -> Ready: from each create's response to the first watch event showing Ready=True (p50, p99,
  and p99 per tenth of the creates: where in the run the tail sits);
- each operator's RSS and CPU seconds (from /proc) once GreenMatrix's queue is empty (work it put
  behind the creates counts), and GreenMatrix's CPU ms per profile created;
- how busy the whole machine was while creating (all its cores), and this client's own CPU;
- status writes, Events and reconciles per profile, and policy recounts and writes (the operator's
  own counters);
- a yardstick: the CPU of one status patch and one Event made by the operator's own client;
- re-convergence: a higher-priority policy selecting a tenth of the profiles is created, and the time
  until each of them names it in status.appliedPolicy;
- restart: GreenMatrix SIGKILLed and started again, one profile created: the time from the restart to
  its Ready (the initial pass over the N profiles comes first).

Not a test: wall-clock numbers depend on the machine; the lab is borrowed and left as found.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import kubernetes
from greenmatrix_lab import Lab
from greenmatrix_operator.adapters.kube import KubeClient
from greenmatrix_operator.records import WORKLOAD_PROFILE, ObjectRecord
from greenmatrix_operator.settings import ApiSettings, QueueSettings

REPO = Path(__file__).resolve().parents[1]
GROUP, VERSION = "greenmatrix.io", "v1alpha1"
OPERATOR = "greenmatrix_operator_"  # its metrics' prefix
# Profiles differ in concurrency and input length; coprime counts, so specs repeat every 741 creates.
CONCURRENCIES, INPUT_LENGTHS = 57, 13
SPEC_CYCLE = CONCURRENCIES * INPUT_LENGTHS
NOOP = """
import kopf

@kopf.on.event("greenmatrix.io", "v1alpha1", "workloadprofiles")
async def workload(**_):
    pass

@kopf.on.event("greenmatrix.io", "v1alpha1", "optimizationpolicies")
async def policy(**_):
    pass
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def usage(pid: int) -> tuple[float, float]:
    """(RSS MB, CPU seconds) of a process."""
    rss = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rss, (int(fields[11]) + int(fields[12])) / ticks


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU ticks of the whole machine so far, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return float(sum(fields) - idle), float(sum(fields))


def client_floor(lab: Lab, api: Any, status: dict[str, Any], namespace: str, count: int = 400) -> float:
    """CPU ms this process spends on one status patch and one Event made by the operator's own client
    (`KubeClient`: a merge patch of a real status, then an Event, eight at a time as its workers make
    them), on profiles no operator watches: the floor of what the operator does per profile beyond
    Kopf's share."""
    lab.kubectl("create", "namespace", namespace)
    for i in range(count):
        spec = {"task": "inference", "model": {"name": "meta-llama/Llama-3.1-8B-Instruct"},
                "inference": {"concurrency": 8}}  # fmt: skip
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "WorkloadProfile", "metadata": {"name": f"f-{i}"},
                "spec": spec}  # fmt: skip
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, "workloadprofiles", body)
    kube = KubeClient(kubernetes.config.new_client_from_config(lab.env["KUBECONFIG"]), ApiSettings())
    records = [ObjectRecord(WORKLOAD_PROFILE, namespace, f"f-{i}", "", 1, "") for i in range(count)]

    async def write(record: ObjectRecord, lane: asyncio.Semaphore) -> None:
        async with lane:
            await kube.patch_status(record, status)
            await kube.post_event(record, "Normal", "RecommendationProvided", "floor")

    async def measure() -> float:
        lane = asyncio.Semaphore(QueueSettings().workers)
        await write(records[0], lane)  # the connection opened outside the measure
        started = time.thread_time()  # the loop runs here; the watchers in their own threads
        await asyncio.gather(*(write(record, lane) for record in records[1:]))
        spent = time.thread_time() - started
        await kube.aclose()
        return 1e3 * spent / (count - 1)

    return asyncio.run(measure())


def metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0, help="creates per second")
    parser.add_argument("--namespaces", type=int, default=10)
    args = parser.parse_args()
    lab = Lab()
    with lab.borrowed():
        run(lab, args.count, args.rate, args.namespaces)


def run(lab: Lab, count: int, rate: float, namespace_count: int) -> None:
    env = lab.env
    lab.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    prefix = f"bench-{os.getpid()}"
    namespaces = [f"{prefix}-{i}" for i in range(namespace_count)]
    for ns in namespaces:
        lab.kubectl("create", "namespace", ns)
    api = kubernetes.client.CustomObjectsApi(kubernetes.config.new_client_from_config(env["KUBECONFIG"]))
    workdir = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    gm_port = free_port()
    gm_log = (workdir / "greenmatrix.log").open("wb")
    command = [
        str(Path(sys.executable).parent / "greenmatrix"),
        "operator",
        *[f"--namespace={ns}" for ns in namespaces],
        "--health-port=0",
        f"--metrics-port={gm_port}",
    ]
    gm_env = {k: v for k, v in env.items() if k != "GREENMATRIX_PROMETHEUS_URL"}
    greenmatrix = subprocess.Popen(
        command, env=gm_env, stdout=gm_log, stderr=subprocess.STDOUT, start_new_session=True
    )
    (workdir / "noop.py").write_text(NOOP)
    noop = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kopf",
            "run",
            "--standalone",
            *[f"--namespace={ns}" for ns in namespaces],
            "noop.py",
        ],
        cwd=workdir,
        env=env,
        stdout=(workdir / "noop.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    ready_at: dict[tuple[str, str], float] = {}
    created_at: dict[tuple[str, str], float] = {}
    applied: dict[tuple[str, str], str] = {}
    stop = threading.Event()

    def watch(ns: str) -> None:
        w = kubernetes.watch.Watch()
        while not stop.is_set():
            # Resumed where it stopped: a watch without a resourceVersion resends every object, which
            # at 1,000 per namespace would load the API server more than the operators measured.
            since = {"resource_version": w.resource_version} if w.resource_version else {}
            try:
                for event in w.stream(
                    api.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    ns,
                    "workloadprofiles",
                    timeout_seconds=30,
                    **since,
                ):
                    obj = event["object"]
                    key = (ns, obj["metadata"]["name"])
                    status = obj.get("status") or {}
                    if key not in ready_at and any(
                        c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", [])
                    ):
                        ready_at[key] = time.time()
                    if status.get("appliedPolicy"):
                        applied[key] = status["appliedPolicy"]
                    if stop.is_set():
                        break
            except kubernetes.client.ApiException as err:
                if err.status == 410:  # too old: start over from a fresh listing
                    w = kubernetes.watch.Watch()
                time.sleep(0.2)
            except Exception:  # a watch that ends is simply restarted
                time.sleep(0.2)

    watchers = [threading.Thread(target=watch, args=(ns,), daemon=True) for ns in namespaces]
    for t in watchers:
        t.start()
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                metrics(gm_port)
                break
            except OSError:
                time.sleep(0.5)
        time.sleep(5)  # both operators listing and watching
        base = {"greenmatrix": usage(greenmatrix.pid), "noop": usage(noop.pid)}
        for ns in namespaces:
            policy = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "OptimizationPolicy",
                      "metadata": {"name": "base"},
                      "spec": {"objectives": {"cost": 1, "latency": 1}}}  # fmt: skip
            api.create_namespaced_custom_object(GROUP, VERSION, ns, "optimizationpolicies", policy)
        started = time.time()
        machine_before, own_before = machine_busy(), os.times()
        for i in range(count):
            ns = namespaces[i % len(namespaces)]
            name = f"wp-{i}"
            body = {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "WorkloadProfile",
                "metadata": {"name": name, "labels": {"group": str(i % 10)}},
                "spec": {
                    "task": "inference",
                    "model": {"name": "meta-llama/Llama-3.1-8B-Instruct"},
                    "inference": {
                        "concurrency": 8 + i % CONCURRENCIES,
                        "inputTokens": 256 + 64 * (i % INPUT_LENGTHS),
                    },
                },
            }
            api.create_namespaced_custom_object(GROUP, VERSION, ns, "workloadprofiles", body)
            created_at[(ns, name)] = time.time()
            pause = started + (i + 1) / rate - time.time()
            if pause > 0:
                time.sleep(pause)
        create_s = time.time() - started
        machine_after, own_after = machine_busy(), os.times()
        busy_share = (machine_after[0] - machine_before[0]) / max(1.0, machine_after[1] - machine_before[1])
        bench_cpu = (own_after.user + own_after.system) - (own_before.user + own_before.system)
        deadline = time.time() + max(300, count / 10)
        while len(ready_at) < count and time.time() < deadline:
            time.sleep(0.5)
        converged = time.time()
        latencies = [ready_at[k] - created_at[k] for k in created_at if k in ready_at]
        # The specs repeat every SPEC_CYCLE creates: the first of each needs a plan of its own
        # (~13 ms of CPU), the rest reuse it.
        first = [
            ready_at[k] - created_at[k] for i, k in enumerate(created_at) if k in ready_at and i < SPEC_CYCLE
        ]
        repeated = [
            ready_at[k] - created_at[k] for i, k in enumerate(created_at) if k in ready_at and i >= SPEC_CYCLE
        ]
        # Where the tail sits in time: p99 of each tenth of the creates, in order.
        tenths = [[] for _ in range(10)]  # type: list[list[float]]
        for i, k in enumerate(created_at):
            if k in ready_at:
                tenths[min(9, 10 * i // count)].append(ready_at[k] - created_at[k])
        by_tenth = [round(percentile(t, 0.99), 1) if t else None for t in tenths]
        # Counted once the queue is empty: work deferred behind the creates (a profile's advice, a
        # policy's recount) is part of what each profile cost.
        deadline = time.time() + 120
        while time.time() < deadline:
            gauges = metrics(gm_port)
            if not gauges.get(f"{OPERATOR}queue_depth") and not gauges.get(f"{OPERATOR}queue_in_progress"):
                break
            time.sleep(0.5)
        settled = time.time()
        after = {"greenmatrix": usage(greenmatrix.pid), "noop": usage(noop.pid)}
        counters = metrics(gm_port)
        writes = counters.get(f'{OPERATOR}status_writes_total{{kind="WorkloadProfile"}}', 0)
        events = sum(v for k, v in counters.items() if k.startswith(f"{OPERATOR}events_total"))
        reconciles = counters.get(f'{OPERATOR}reconciles_total{{kind="WorkloadProfile"}}', 0)
        # A policy's status counts the profiles of its namespace: how often it was redone and rewritten.
        policy_reconciles = counters.get(f'{OPERATOR}reconciles_total{{kind="OptimizationPolicy"}}', 0)
        policy_writes = counters.get(f'{OPERATOR}status_writes_total{{kind="OptimizationPolicy"}}', 0)
        # Re-convergence: a higher-priority policy over one group of profiles (a tenth of them).
        group = [k for i, k in enumerate(created_at) if i % 10 == 3]
        moved = time.time()
        for ns in namespaces:
            policy = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "OptimizationPolicy",
                      "metadata": {"name": "override"},
                      "spec": {"priority": 10, "selector": {"matchLabels": {"group": "3"}},
                               "objectives": {"energy": 1}}}  # fmt: skip
            api.create_namespaced_custom_object(GROUP, VERSION, ns, "optimizationpolicies", policy)
        deadline = time.time() + 600
        while time.time() < deadline and any(applied.get(k) != "override" for k in group):
            time.sleep(0.2)
        reconverge = time.time() - moved
        done = sum(applied.get(k) == "override" for k in group)
        # Restart: SIGKILL, start again, create one profile; the time to its Ready from the restart.
        os.killpg(greenmatrix.pid, signal.SIGKILL)
        greenmatrix.wait(timeout=30)
        restarted = time.time()
        greenmatrix = subprocess.Popen(
            command, env=gm_env, stdout=gm_log, stderr=subprocess.STDOUT, start_new_session=True
        )
        probe = {**body, "metadata": {"name": "after-restart"}}
        api.create_namespaced_custom_object(GROUP, VERSION, namespaces[0], "workloadprofiles", probe)
        deadline = time.time() + 600
        while (namespaces[0], "after-restart") not in ready_at and time.time() < deadline:
            time.sleep(0.1)
        restart_s = ready_at.get((namespaces[0], "after-restart"), float("nan")) - restarted
        restart_rss, restart_cpu = usage(greenmatrix.pid)
        sample = api.get_namespaced_custom_object(GROUP, VERSION, namespaces[0], "workloadprofiles", "wp-0")
        try:
            floor_ms: float | None = client_floor(lab, api, sample.get("status") or {}, f"{prefix}-floor")
        except Exception as err:  # the yardstick must not cost the run's report
            print(f"client floor not measured: {err!r}"[:300], file=sys.stderr)
            floor_ms = None
        gm_cpu = after["greenmatrix"][1] - base["greenmatrix"][1]
        noop_cpu = after["noop"][1] - base["noop"][1]
        report = {
            "profiles": count,
            "created_in_s": round(create_s, 1),
            "ready": len(latencies),
            "apply_to_ready_p50_s": round(statistics.median(latencies), 2) if latencies else None,
            "apply_to_ready_p99_s": round(percentile(latencies, 0.99), 2) if latencies else None,
            "apply_to_ready_p99_s_first_of_their_spec": round(percentile(first, 0.99), 2) if first else None,
            "apply_to_ready_p99_s_repeated_specs": round(percentile(repeated, 0.99), 2) if repeated else None,
            "apply_to_ready_p99_s_by_tenth_of_the_creates": by_tenth,
            "all_ready_after_last_create_s": round(converged - (started + create_s), 1),
            "queue_empty_after_last_create_s": round(settled - (started + create_s), 1),
            # How busy the whole machine (API server, etcd, both operators, this client) was while
            # creating: near 1, apply -> Ready is mostly waiting for a core.
            "machine_cpu_busy_share_while_creating": round(busy_share, 2),
            "bench_client_cpu_s_while_creating": round(bench_cpu, 1),
            "greenmatrix_rss_mb_before": round(base["greenmatrix"][0], 1),
            "noop_kopf_rss_mb_before": round(base["noop"][0], 1),
            "greenmatrix_rss_mb": round(after["greenmatrix"][0], 1),
            "noop_kopf_rss_mb": round(after["noop"][0], 1),
            "greenmatrix_cpu_s": round(gm_cpu, 1),
            "noop_kopf_cpu_s": round(noop_cpu, 1),
            "greenmatrix_cpu_ms_per_profile": round(1e3 * gm_cpu / count, 2),
            "cpu_ratio_to_noop": round(gm_cpu / noop_cpu, 1) if noop_cpu > 0 else None,
            "status_writes_per_profile": round(writes / count, 2),
            "events_per_profile": round(events / count, 2),
            "reconciles_per_profile": round(reconciles / count, 2),
            "policy_reconciles_per_profile": round(policy_reconciles / count, 2),
            "policy_status_writes_per_profile": round(policy_writes / count, 2),
            "policy_change_profiles": len(group),
            "policy_change_reconverged": done,
            "policy_change_reconverge_s": round(reconverge, 1),
            "client_cpu_ms_per_status_patch_and_event": round(floor_ms, 2) if floor_ms is not None else None,
            "restart_to_new_profile_ready_s": round(restart_s, 1),
            "restart_cpu_s_until_then": round(restart_cpu, 1),
            "restart_rss_mb_then": round(restart_rss, 1),
        }
        print(json.dumps(report, indent=1))
    finally:
        stop.set()
        for process in (greenmatrix, noop):
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        for ns in [*namespaces, f"{prefix}-floor"]:
            lab.kubectl("delete", "namespace", ns, "--wait=false", check=False)


if __name__ == "__main__":
    main()
