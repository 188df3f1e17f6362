"""Fixtures for the operator's lab tests: the CRDs installed, and `greenmatrix operator` running.

The operator runs as users run it: the `greenmatrix operator` command in a subprocess with the
lab's KUBECONFIG, limited to its own test namespace so other lab tests' objects stay theirs.
It is always stopped (SIGTERM, then SIGKILL) when the session ends, also on failures.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from greenmatrix_lab import Lab
from operator_helpers import CRDS, OPERATOR_NAMESPACE, RunningOperator, healthy, wait_until


def _established(lab: Lab, name: str) -> bool:
    crd = json.loads(lab.kubectl("get", "crd", name, "-o", "json").stdout)
    conditions = crd.get("status", {}).get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


@pytest.fixture(scope="session")
def crds(lab: Lab) -> Lab:
    """The GreenMatrix CRDs from crds/, applied and Established."""
    lab.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    # Polled rather than `kubectl wait`: a CRD whose status the API server has not written yet makes
    # `kubectl wait --for=condition=...` fail at once (".status.conditions accessor error").
    for name in ("workloadprofiles.greenmatrix.io", "optimizationpolicies.greenmatrix.io"):
        wait_until(lambda name=name: _established(lab, name), timeout=60, what=f"CRD {name} Established")
    return lab


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_operator(
    lab: Lab,
    namespace: str,
    log: Path,
    extra: Sequence[str] = (),
    *,
    environment: Mapping[str, str] | None = None,
    fresh_namespace: bool = True,
) -> Iterator[RunningOperator]:
    """`greenmatrix operator` limited to `namespace` (made afresh unless `fresh_namespace` is False: a
    restart), stopped (SIGTERM, then SIGKILL) on exit; `environment` is added to the lab's."""
    if fresh_namespace:
        # A fresh namespace: leftovers of an interrupted session must not leak into the assertions.
        lab.kubectl("delete", "namespace", namespace, "--ignore-not-found", "--timeout=120s")
        lab.kubectl("create", "namespace", namespace)
    health, metrics = _free_port(), _free_port()
    command = [
        str(Path(sys.executable).parent / "greenmatrix"),
        "operator",
        "--namespace",
        namespace,
        "--health-port",
        str(health),
        "--metrics-port",
        str(metrics),
        "--debounce",
        "0.1",
        *extra,
    ]
    # The lab's environment names its Prometheus, which the operator would read: only `extra` says so.
    env = {k: v for k, v in lab.env.items() if k != "GREENMATRIX_PROMETHEUS_URL"} | dict(environment or {})
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    running = RunningOperator(
        process=process,
        log=log,
        metrics_url=f"http://127.0.0.1:{metrics}/metrics",
        health_url=f"http://127.0.0.1:{health}/healthz",
        namespace=namespace,
    )
    try:
        wait_until(lambda: healthy(running.health_url) or not running.alive(), 90, "the operator's /healthz")
        if not running.alive():
            pytest.fail(f"operator exited early:\n{running.log_text()[-4000:]}")
        yield running
    finally:
        if running.alive():
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        sys.stderr.write(f"operator log: {log}\n")
        if fresh_namespace:
            lab.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture(scope="session")
def gm_operator(crds: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningOperator]:
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    with running_operator(crds, OPERATOR_NAMESPACE, log) as running:
        yield running
