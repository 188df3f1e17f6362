"""The lab's daemons: how each is launched and how to tell it is ready.

Everything listens on 127.0.0.1 only. The apiserver keeps its default admission plugins
(ServiceAccount included) and kube-controller-manager holds the signing keys, so
ServiceAccounts, their tokens (`kubectl create token`) and CSR signing work as in a real cluster.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from greenmatrix_lab.health import Probe
from greenmatrix_lab.layout import Layout
from greenmatrix_lab.nodes import KWOK_ANNOTATION, KWOK_ANNOTATION_VALUE

SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
# Pod IPs kwok hands out; kept clear of the service range.
POD_CIDR = "10.244.0.1/16"


@dataclass(frozen=True)
class Launch:
    """One daemon to start: its command, the ports it owns and its readiness probe."""

    name: str
    argv: list[str]
    ports: dict[str, int]
    probe: Probe
    timeout: float = 60.0
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def exe(self) -> str:
        return self.argv[0]

    def environ(self) -> dict[str, str]:
        return {**os.environ, **self.env}


def etcd(binary: Path, layout: Layout, client_port: int, peer_port: int) -> Launch:
    peer = f"http://127.0.0.1:{peer_port}"
    client = f"http://127.0.0.1:{client_port}"
    return Launch(
        "etcd",
        [
            str(binary),
            "--name=lab",
            f"--data-dir={layout.run_dir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=lab={peer}",
            # A throwaway cluster: durability is not worth the fsync latency on a shared disk.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ],
        {"client": client_port, "peer": peer_port},
        Probe(f"{client}/health"),
        timeout=30,
    )


def kube_apiserver(binary: Path, layout: Layout, port: int, etcd_port: int) -> Launch:
    pki = layout.pki_dir
    return Launch(
        "kube-apiserver",
        [
            str(binary),
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={pki / 'apiserver'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--authorization-mode=RBAC",
            "--allow-privileged=true",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--profiling=false",
        ],
        {"secure": port},
        Probe(f"https://127.0.0.1:{port}/readyz", tls="lab"),
        timeout=180,
    )


def kube_controller_manager(binary: Path, layout: Layout, port: int) -> Launch:
    pki = layout.pki_dir
    return _controller(
        "kube-controller-manager",
        binary,
        layout,
        port,
        "--cluster-name=greenmatrix-lab",
        f"--service-account-private-key-file={pki / 'sa.key'}",
        f"--root-ca-file={pki / 'ca.crt'}",
        "--use-service-account-credentials=true",
        f"--cluster-signing-cert-file={pki / 'ca.crt'}",
        f"--cluster-signing-key-file={pki / 'ca.key'}",
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
    )


def kube_scheduler(binary: Path, layout: Layout, port: int) -> Launch:
    return _controller("kube-scheduler", binary, layout, port)


def _controller(name: str, binary: Path, layout: Layout, port: int, *flags: str) -> Launch:
    """A control-plane controller with its own kubeconfig and certificate folder, serving /healthz
    on `port`, without leader election; `flags` are its own."""
    pki = layout.pki_dir
    return Launch(
        name,
        [
            str(binary),
            f"--kubeconfig={pki / f'{name}.kubeconfig'}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={pki / name}",
            "--leader-elect=false",
            *flags,
            "--profiling=false",
        ],
        {"secure": port},
        Probe(f"https://127.0.0.1:{port}/healthz", tls="insecure"),
    )


def kwok(binary: Path, layout: Layout, port: int) -> Launch:
    """kwok with its built-in node and pod stages (used when no Stage is configured): nodes
    get Ready conditions and lease heartbeats, pods go Pending -> Running on those nodes."""
    return Launch(
        "kwok",
        [
            str(binary),
            f"--kubeconfig={layout.pki_dir / 'kwok.kubeconfig'}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}={KWOK_ANNOTATION_VALUE}",
            f"--server-address=127.0.0.1:{port}",
            f"--cidr={POD_CIDR}",
            "--node-lease-duration-seconds=40",
        ],
        {"server": port},
        Probe(f"http://127.0.0.1:{port}/healthz"),
        # kwok reads ~/.kwok/kwok.yaml unless its work dir points elsewhere.
        env={"KWOK_WORKDIR": str(layout.run_dir / "kwok")},
    )


def prometheus(binary: str, layout: Layout, port: int) -> Launch:
    directory = layout.prometheus_dir
    return Launch(
        "prometheus",
        [
            binary,
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'data'}",
            "--storage.tsdb.retention.time=2d",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-remote-write-receiver",
            "--web.enable-lifecycle",
        ],
        {"web": port},
        Probe(f"http://127.0.0.1:{port}/-/ready"),
    )
