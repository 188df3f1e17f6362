"""`greenmatrix lab replay`: serve a demand trace as vLLM and DCGM metrics of a Deployment's pods.

For each Ready pod of the target (polled every second: pods come and go as it is scaled) a
/metrics endpoint runs on 127.0.0.1 and is registered as a scrape target of the lab's Prometheus
(job `workloads`, honor_labels, target labels namespace/pod/node). The trace's demand at each
moment is split evenly over the Ready pods; each pod behaves as the engine predicts for its GPU
(`greenmatrix_lab.emulation`). With `backfill`, the trace's first part is remote-written as the
same series' history before serving starts, so counters continue across the seam.

    Replay(lab, "ns/deploy", Path("trace.csv"), speedup=60, backfill=86400, record=Path("served.csv")).run()
"""

from __future__ import annotations

import csv
import dataclasses
import math
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from greenmatrix_lab.emulation import TPOT_SIGMA, TTFT_SIGMA, Replica, ReplicaModel
from greenmatrix_lab.endpoints import DeploymentServer, PodServer
from greenmatrix_lab.exposition import BUCKETS, PodIdentity, samples
from greenmatrix_lab.lab import Lab
from greenmatrix_lab.prometheus import (
    SCRAPE_INTERVAL_S,
    WORKLOAD_JOB,
    ensure_workload_scraping,
    workload_targets_dir,
    write_scrape_targets,
)
from greenmatrix_lab.remote_write import Series, push
from greenmatrix_lab.trace import Timeline, Trace, TraceError, read_trace
from greenmatrix_lab.workload import (
    DRIVER_VERSION,
    GPU_PRODUCT,
    ReadyPod,
    ReplicaModels,
    Target,
    TargetError,
    deployment_replicas,
    deployment_selector,
    find_profile,
    node_labels,
    ready_pods,
)

MAX_BACKFILL_SAMPLES = 200_000
# p95 / median of a lognormal spread: exp(1.645 sigma).
P95_OF_MEDIAN = {"ttft": math.exp(1.645 * TTFT_SIGMA), "tpot": math.exp(1.645 * TPOT_SIGMA)}
_PUSH_CHUNK = 20_000
# The lab's Prometheus keeps two days (components.prometheus): older history would vanish.
MAX_HISTORY_S = 47 * 3600
_FIRST_POD_TIMEOUT_S = 120
_DESIRED_EVERY_TICKS = 5


@dataclass(frozen=True)
class ServedRow:
    """What one pod served over one step: a row of the --record CSV."""

    wall_time: float
    trace_time: float
    phase: str
    """backfill (written as history) or live (scraped)."""
    pod: str
    node: str
    instance: str
    """The series' `instance` label (host:port of the pod's /metrics): tells runs over the same pods apart."""
    demand: float
    """Requests/s of the whole trace at this moment."""
    offered: float
    served: float
    ttft_s: float
    """Median time to first token of the requests completed in this step (queueing included)."""
    ttft_p95_s: float
    """95th percentile of the same requests (the histograms spread them lognormally)."""
    tpot_s: float
    tpot_p95_s: float
    e2e_s: float
    running: float
    waiting: float
    kv_usage: float
    gpu_util_percent: float
    watts: float


RECORD_COLUMNS = tuple(f.name for f in dataclasses.fields(ServedRow))


@dataclass(frozen=True)
class Summary:
    rows: int
    """Trace rows whose time was served live."""
    wall_seconds: float
    pods: int
    """Pods served at some point."""
    backfill_points: int
    """History samples per series written before serving (0 without --backfill)."""
    stopped_early: bool

    def line(self, target: Target) -> str:
        how = "stopped early" if self.stopped_early else "trace ended"
        history = f", {self.backfill_points} history points per series" if self.backfill_points else ""
        return (
            f"replayed {self.rows} trace rows on {target} in {self.wall_seconds:.0f}s wall "
            f"({self.pods} pods{history}; {how})"
        )


class Replay:
    """Serve `trace` as the metrics of `target`'s Ready pods until the trace ends or `stop()`.

    `trace` is a CSV path or a Trace; `speedup` compresses trace time (60: a trace hour in a
    wall minute); `backfill` is trace seconds written as history first. `record` gets one row per
    pod per step (ServedRow) as it happens; `served` holds the same rows in memory. Bad input
    raises TargetError or TraceError (both ValueError) from `run()` before anything is served.
    """

    def __init__(
        self,
        lab: Lab,
        target: str | Target,
        trace: Path | Trace,
        speedup: float = 1.0,
        backfill: float = 0.0,
        *,
        record: Path | None = None,
        poll_interval: float = 1.0,
        say: Callable[[str], None] | None = None,
        capacity_cut: float | None = None,
    ) -> None:
        self.lab = lab
        self.target = target if isinstance(target, Target) else Target.parse(target)
        self._trace_source = trace
        self.speedup = float(speedup)
        self.backfill = float(backfill)
        self.record = record
        self.poll_interval = poll_interval
        self._say = say or (lambda message: None)
        self._stop = threading.Event()
        self._servers: dict[str, PodServer] = {}
        self._deployment: DeploymentServer | None = None
        self._gpus_in_use: dict[str, set[int]] = {}
        self._node_labels: dict[str, dict[str, str]] = {}
        self._record_file: IO[str] | None = None
        self._writer: Any = None
        self.served: list[ServedRow] = []
        self.pods_seen: set[str] = set()
        self.profile_name: str | None = None
        self.timeline: Timeline | None = None
        """Set when serving starts: when the history began and live serving starts and ends."""
        self.started = threading.Event()
        """Set once every first pod is a scrape target (and any history written)."""
        self.capacity_cut = capacity_cut
        """An emulated fault: the share of its capacity each replica keeps once the target is scaled in."""
        self._most_pods = 0
        self.cut_at: float | None = None
        """When the capacity cut began (wall time), None before."""

    # -- the public surface --------------------------------------------------------------

    def stop(self) -> None:
        """End the replay at its next step (from another thread or a signal handler)."""
        self._stop.set()

    @property
    def pods(self) -> dict[str, str]:
        """Pod name -> the address of its /metrics endpoint, for the pods served right now."""
        return {name: server.address for name, server in list(self._servers.items())}

    @property
    def models(self) -> dict[str, ReplicaModel]:
        """Pod name -> what the engine predicts for it (TTFT, TPOT, capacity), for the pods served now."""
        return {name: server.replica.model for name, server in list(self._servers.items())}

    def served_rate(self, start: float, end: float) -> float:
        """Requests/s served live by all pods together over the wall-clock span (start, end]: the
        figure a `sum(rate(vllm:request_success_total[...]))` over that span should show."""
        totals: dict[float, float] = {}
        for row in list(self.served):
            if row.phase == "live" and start < row.wall_time <= end:
                totals[row.wall_time] = totals.get(row.wall_time, 0.0) + row.served
        if not totals:
            raise ValueError(f"nothing served live between {start:.0f} and {end:.0f}")
        return sum(totals.values()) / len(totals)

    def run(self) -> Summary:
        trace = (
            self._trace_source if isinstance(self._trace_source, Trace) else read_trace(self._trace_source)
        )
        Timeline(trace, self.speedup, self.backfill, live_wall=0.0)  # bad timing fails before any wait
        self._check_history()
        selector = deployment_selector(self.lab, self.target)
        spec, self.profile_name = find_profile(self.lab, self.target)
        models = ReplicaModels(spec)
        prometheus_url = self.lab.prometheus_url
        config = self.lab.layout.prometheus_dir / "prometheus.yml"
        ensure_workload_scraping(config, self.lab.layout.scrape_targets_dir, prometheus_url)
        started = time.time()
        timeline: Timeline | None = None
        points = 0
        finished = False
        try:
            self._open_record()
            self._add_pods(self._first_pods(selector), models)
            ready = len(self._servers)
            self._deployment = DeploymentServer(
                self.target, deployment_replicas(self.lab, self.target) or ready, ready
            )
            timeline = Timeline(trace, self.speedup, self.backfill, live_wall=time.time())
            points = self._write_history(timeline, prometheus_url) if self.backfill else 0
            for server in self._servers.values():
                self._register(server)
            self._register(self._deployment)
            self._announce(spec, timeline)
            self.timeline = timeline
            self.started.set()
            finished = self._serve(timeline, selector, models)
        except KeyboardInterrupt:
            pass
        finally:
            self._close()
        served_to = min(trace.end, timeline.tau(time.time())) if timeline else trace.start
        rows = trace.rows_between(trace.start + self.backfill, served_to) if timeline else 0
        return Summary(rows, time.time() - started, len(self.pods_seen), points, not finished)

    # -- steps ---------------------------------------------------------------------------

    def _check_history(self) -> None:
        history = self.backfill / self.speedup if self.speedup > 0 else 0
        if history > MAX_HISTORY_S:
            raise TraceError(
                f"--backfill {self.backfill:g}s at --speedup {self.speedup:g} is {history / 3600:.1f}h of "
                f"history; the lab's Prometheus keeps 48h: raise --speedup or shorten --backfill"
            )

    def _first_pods(self, selector: str) -> list[ReadyPod]:
        deadline = time.monotonic() + _FIRST_POD_TIMEOUT_S
        while True:
            pods = ready_pods(self.lab, self.target, selector)
            if pods or self._stop.is_set():
                return pods
            if time.monotonic() > deadline:
                raise TargetError(f"--target {self.target}: no Ready pod in {_FIRST_POD_TIMEOUT_S}s")
            self._stop.wait(self.poll_interval)

    def _announce(self, spec: Any, timeline: Timeline) -> None:
        source = (
            f"WorkloadProfile {self.profile_name}" if self.profile_name else "no WorkloadProfile: default"
        )
        models = {
            (s.replica.model.gpu, s.replica.model.gpus): s.replica.model for s in self._servers.values()
        }
        for (gpu, gpus), model in models.items():
            self._say(
                f"{spec.model.name} ({source}) on {gpu} x{gpus}: TTFT {model.ttft_s * 1e3:.0f} ms, "
                f"TPOT {model.tpot_s * 1e3:.1f} ms, capacity {model.capacity:.2f} req/s per replica"
            )
        self._say(
            f"serving {len(self._servers)} pods of {self.target} until the trace ends in "
            f"{timeline.end_wall - time.time():.0f}s (speedup {self.speedup:g})"
        )

    def _serve(self, timeline: Timeline, selector: str, models: ReplicaModels) -> bool:
        """Step every poll interval until the trace ends (True) or stop() (False)."""
        trace = timeline.trace
        last = timeline.live_wall
        tick = 0
        while not self._stop.wait(max(0.0, last + self.poll_interval - time.time())):
            now = min(time.time(), timeline.end_wall)
            self._sync_pods(self._poll(selector), models)
            self._count_replicas(tick := tick + 1)
            dt = now - last
            moment = timeline.tau(last + dt / 2)
            demand = trace.demand(moment)
            self._step(list(self._servers.values()), demand, dt, moment, now, "live")
            last = now
            if now >= timeline.end_wall:
                return True
        return False

    def _poll(self, selector: str) -> list[ReadyPod]:
        """The Ready pods now; the ones served so far when the apiserver does not answer this once."""
        try:
            return ready_pods(self.lab, self.target, selector)
        except (TargetError, subprocess.TimeoutExpired) as error:
            self._say(f"pods not listed ({error}); serving the same pods")
            return [
                ReadyPod(name, s.identity.node, s.identity.container, s.replica.model.gpus)
                for name, s in self._servers.items()
            ]

    def _step(
        self, servers: list[PodServer], demand: float, dt: float, moment: float, wall: float, phase: str
    ) -> None:
        share = demand / len(servers) if servers else 0.0
        if phase == "live":
            self._cut_when_scaled_in(servers, wall)
        for server in servers:
            tick = server.advance(share, dt, moment)
            self._note(ServedRow(
                wall_time=round(wall, 3),
                trace_time=round(moment, 3),
                phase=phase,
                pod=server.identity.pod,
                node=server.identity.node,
                instance=server.address,
                demand=demand,
                offered=share,
                served=tick.served,
                ttft_s=tick.ttft_s,
                ttft_p95_s=tick.ttft_s * P95_OF_MEDIAN["ttft"],
                tpot_s=tick.tpot_s,
                tpot_p95_s=tick.tpot_s * P95_OF_MEDIAN["tpot"],
                e2e_s=tick.e2e_s,
                running=tick.running,
                waiting=tick.waiting,
                kv_usage=tick.kv_usage,
                gpu_util_percent=sum(g.util_percent for g in tick.gpus) / len(tick.gpus),
                watts=sum(g.watts for g in tick.gpus),
            ))  # fmt: skip

    def _cut_when_scaled_in(self, servers: list[PodServer], wall: float) -> None:
        """Once fewer pods serve than ever did, each keeps only `capacity_cut` of its capacity."""
        self._most_pods = max(self._most_pods, len(servers))
        if self.capacity_cut is None:
            return
        if self.cut_at is None and len(servers) < self._most_pods:
            self.cut_at = wall
            self._say(f"scaled in to {len(servers)} pods: capacity cut to {self.capacity_cut:.0%}")
        if self.cut_at is not None:
            for server in servers:
                server.replica.capacity_factor = self.capacity_cut

    # -- pods ----------------------------------------------------------------------------

    def _sync_pods(self, pods: list[ReadyPod], models: ReplicaModels) -> None:
        ready = {p.name for p in pods}
        for name in [n for n in self._servers if n not in ready]:
            self._remove(name)
        added = self._add_pods([p for p in pods if p.name not in self._servers], models)
        for server in added:
            self._register(server)

    def _add_pods(self, pods: list[ReadyPod], models: ReplicaModels) -> list[PodServer]:
        added = []
        for pod in pods:
            labels = self._node_labels.get(pod.node) or node_labels(self.lab, pod.node)
            self._node_labels[pod.node] = labels
            model = models.for_node(labels, pod.gpus, f"pod {self.target.namespace}/{pod.name} on {pod.node}")
            identity = PodIdentity(
                namespace=self.target.namespace,
                pod=pod.name,
                node=pod.node,
                container=pod.container,
                gpu_indices=self._claim_gpus(pod.node, pod.gpus),
                product=labels.get(GPU_PRODUCT, ""),
                driver_version=labels.get(DRIVER_VERSION, ""),
            )
            server = PodServer(Replica(model, f"{self.target}/{pod.name}", BUCKETS), identity)
            self._servers[pod.name] = server
            self.pods_seen.add(pod.name)
            added.append(server)
        return added

    def _claim_gpus(self, node: str, count: int) -> tuple[int, ...]:
        used = self._gpus_in_use.setdefault(node, set())
        free = [i for i in range(len(used) + count) if i not in used][:count]
        used.update(free)
        return tuple(free)

    def _count_replicas(self, tick: int) -> None:
        """Ready replicas every step; desired ones every few (one more apiserver call)."""
        if self._deployment is None:
            return
        replicas = None
        if tick % _DESIRED_EVERY_TICKS == 0:
            try:
                replicas = deployment_replicas(self.lab, self.target)
            except (TargetError, subprocess.TimeoutExpired):
                replicas = None
        self._deployment.update(replicas, len(self._servers))

    def _register(self, endpoint: PodServer | DeploymentServer) -> None:
        directory = workload_targets_dir(self.lab.layout.scrape_targets_dir)
        directory.mkdir(parents=True, exist_ok=True)
        write_scrape_targets(directory, _target_file(endpoint), [endpoint.address], endpoint.target_labels())
        what = (
            f"pod {endpoint.identity.pod} on {endpoint.identity.node}"
            if isinstance(endpoint, PodServer)
            else (f"kube-state-metrics of {self.target}")
        )
        self._say(f"{what}: scraped at {endpoint.address}")

    def _unregister(self, endpoint: PodServer | DeploymentServer) -> None:
        directory = workload_targets_dir(self.lab.layout.scrape_targets_dir)
        (directory / f"{_target_file(endpoint)}.json").unlink(missing_ok=True)
        endpoint.close()

    def _remove(self, name: str) -> None:
        server = self._servers.pop(name)
        self._gpus_in_use.get(server.identity.node, set()).difference_update(server.identity.gpu_indices)
        self._unregister(server)
        self._say(f"pod {name} gone: its scrape target removed")

    def _close(self) -> None:
        for name in list(self._servers):
            self._remove(name)
        if self._deployment is not None:
            self._unregister(self._deployment)
            self._deployment = None
        if self._record_file is not None:
            self._record_file.close()
            self._record_file = None

    # -- history -------------------------------------------------------------------------

    def _write_history(self, timeline: Timeline, prometheus_url: str) -> int:
        """Remote-write the backfilled span as the pods' own series; returns points per series."""
        servers = list(self._servers.values())
        if not servers:
            return 0
        span = timeline.live_wall - timeline.history_start_wall
        per_pod = len(samples(servers[0].replica, servers[0].identity))
        step = max(SCRAPE_INTERVAL_S, timeline.trace.step / self.speedup)
        step = max(step, span * per_pod * len(servers) / MAX_BACKFILL_SAMPLES)
        count = int(span / step + 1e-6)  # 60 s of history at 5 s is 12 points, rounding or not
        buffers: dict[tuple[tuple[str, str], ...], list[tuple[int, float]]] = {}
        # The last point is the live start itself: live serving continues the counters from there, so
        # a history ending a step early would leave that step's requests uncounted (a dip in rate()).
        moments = [timeline.live_wall - (count - 1 - k) * step for k in range(count)]
        for k, wall in enumerate(moments):
            dt = step if k else 0.0
            moment = timeline.tau(wall - dt / 2)
            self._step(servers, timeline.trace.demand(moment), dt, moment, wall, "backfill")
            endpoints: list[PodServer | DeploymentServer] = [*servers]
            endpoints += [self._deployment] if self._deployment else []
            for endpoint in endpoints:
                extra = {"job": WORKLOAD_JOB, "instance": endpoint.address, **endpoint.target_labels()}
                for name, labels, value in endpoint.samples():
                    key = tuple(sorted({**extra, **labels, "__name__": name}.items()))
                    buffers.setdefault(key, []).append((int(wall * 1e3), value))
        for chunk in _chunks(buffers, _PUSH_CHUNK):
            push(prometheus_url, chunk, timeout=60)
        self._say(f"backfilled {count} points x {len(buffers)} series ({span / 60:.0f} min of history)")
        return count

    # -- the record ----------------------------------------------------------------------

    def _open_record(self) -> None:
        if self.record is None:
            return
        self._record_file = self.record.open("w", newline="")
        self._writer = csv.writer(self._record_file)
        self._writer.writerow(RECORD_COLUMNS)

    def _note(self, row: ServedRow) -> None:
        self.served.append(row)
        if self._writer is not None and self._record_file is not None:
            self._writer.writerow([_cell(getattr(row, c)) for c in RECORD_COLUMNS])
            self._record_file.flush()


def _target_file(endpoint: PodServer | DeploymentServer) -> str:
    if isinstance(endpoint, PodServer):
        return f"{endpoint.identity.namespace}.{endpoint.identity.pod}"
    return f"{endpoint.target.namespace}.{endpoint.target.name}.kube-state-metrics"


def _cell(value: Any) -> str:
    if not isinstance(value, float):
        return str(value)
    return f"{value:.3f}" if abs(value) >= 1e6 else f"{value:.6g}"  # epoch times keep their milliseconds


def _chunks(
    buffers: dict[tuple[tuple[str, str], ...], list[tuple[int, float]]], size: int
) -> Iterator[list[Series]]:
    chunk: list[Series] = []
    held = 0
    for key, points in buffers.items():
        chunk.append(Series(dict(key), points))
        held += len(points)
        if held >= size:
            yield chunk
            chunk, held = [], 0
    if chunk:
        yield chunk
