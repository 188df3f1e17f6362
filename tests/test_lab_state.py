"""A lab whose processes all died (its session or machine stopped) must not block the next `lab up`."""

from __future__ import annotations

import subprocess
import sys

from greenmatrix_lab.health import Probe
from greenmatrix_lab.lab import Lab
from greenmatrix_lab.state import ComponentState, LabState


def _state(pid: int, exe: str) -> LabState:
    probe = Probe(url="http://127.0.0.1:1/healthz")
    component = ComponentState(pid=pid, exe=exe, ports={"web": 1}, log="/dev/null", probe=probe)
    return LabState(
        kubeconfig="/nonexistent", bin_dir="/nonexistent", ready=True, components={"etcd": component}
    )


def test_a_lab_whose_processes_are_gone_is_stale() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert Lab.is_stale(_state(gone.pid, sys.executable))


def test_a_lab_with_a_live_process_is_not_stale() -> None:
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert not Lab.is_stale(_state(alive.pid, sys.executable))
        # A recycled pid running another program does not count as the lab's process.
        assert Lab.is_stale(_state(alive.pid, "/usr/bin/true"))
    finally:
        alive.kill()
        alive.wait()
