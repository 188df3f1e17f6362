"""The /metrics endpoints of a replay: one per emulated pod, one for the target Deployment.

Each is a stdlib HTTP server on 127.0.0.1 (a free port) in a daemon thread, serving the
Prometheus text format of its current samples; the replay advances their state under a lock.
"""

from __future__ import annotations

import http.server
import threading
from typing import Any

from greenmatrix_lab.emulation import Replica, Tick
from greenmatrix_lab.exposition import PodIdentity, Sample, deployment_samples, render, samples
from greenmatrix_lab.workload import Target


class Endpoint:
    """A /metrics endpoint on 127.0.0.1 that serves the text format of `samples()`."""

    def _listen(self, name: str) -> None:
        self._lock = threading.Lock()
        self._http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.port = int(self._http.server_address[1])
        threading.Thread(target=self._http.serve_forever, name=f"metrics-{name}", daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def samples(self) -> list[Sample]:
        raise NotImplementedError

    def exposition(self) -> bytes:
        with self._lock:
            return render(self.samples()).encode()

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()


class PodServer(Endpoint):
    """One emulated pod: its replica, its labels and its /metrics endpoint."""

    def __init__(self, replica: Replica, identity: PodIdentity) -> None:
        self.replica = replica
        self.identity = identity
        self._listen(identity.pod)

    def target_labels(self) -> dict[str, str]:
        return {"namespace": self.identity.namespace, "pod": self.identity.pod, "node": self.identity.node}

    def samples(self) -> list[Sample]:
        return samples(self.replica, self.identity)

    def advance(self, offered: float, dt: float, moment: float) -> Tick:
        with self._lock:
            return self.replica.advance(offered, dt, moment)


class DeploymentServer(Endpoint):
    """What kube-state-metrics says of the target Deployment (the lab runs no kube-state-metrics)."""

    def __init__(self, target: Target, replicas: int, ready: int) -> None:
        self.target = target
        self.replicas = replicas
        self.ready = ready
        self._listen(f"{target.name}-kube-state-metrics")

    def target_labels(self) -> dict[str, str]:
        return {"namespace": self.target.namespace}

    def samples(self) -> list[Sample]:
        return deployment_samples(self.target.namespace, self.target.name, self.replicas, self.ready)

    def update(self, replicas: int | None, ready: int) -> None:
        with self._lock:
            self.replicas = self.replicas if replicas is None else replicas
            self.ready = ready


def _handler(server: Endpoint) -> type[http.server.BaseHTTPRequestHandler]:
    class MetricsHandler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            body = server.exposition()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a scrape every 5 s per pod is no news

    return MetricsHandler
