"""Helpers for the operator's lab tests: waiting, reading objects, and the running operator's handle.

Kept apart from `operator_fixtures` (loaded as a pytest plugin) so test modules can import these
without importing the plugin module before pytest registers it.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from greenmatrix_lab import Lab

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "crds"
OPERATOR_NAMESPACE = "gm-operator-e2e"
T = TypeVar("T")
NODE_CHANGES = "greenmatrix_operator_node_changes_total"


def wait_until(
    check: Callable[[], T], timeout: float = 60, what: str = "condition", interval: float = 0.25
) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout` seconds.

    The timeout only bounds a hung test; nothing is asserted about how fast things happen.
    """
    deadline = time.monotonic() + timeout
    last: T = check()
    while not last:
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
        time.sleep(interval)
        last = check()
    return last


Metrics = dict[str, float]


def in_a_quiet_window(
    attempts: int, window: Callable[[int], tuple[Metrics, Metrics, T]]
) -> tuple[Metrics, Metrics, T]:
    """The first of `attempts` runs of `window(attempt)` (metrics before, metrics after, what it saw)
    in which the operator saw no node change.

    The lab is shared: another session may add or relabel nodes meanwhile, which rightly rewrites
    inventories. The test is skipped when nodes never stop changing.
    """
    for attempt in range(attempts):
        before, after, seen = window(attempt)
        if after[NODE_CHANGES] == before[NODE_CHANGES]:
            return before, after, seen
    pytest.skip("nodes kept changing under a concurrent session; no quiet window to check")


def get_json(lab: Lab, *args: str) -> Any:
    return json.loads(lab.kubectl("get", *args, "-o", "json").stdout)


@dataclass
class RunningOperator:
    """A `greenmatrix operator` subprocess and how to look at it."""

    process: subprocess.Popen[bytes]
    log: Path
    metrics_url: str
    health_url: str
    namespace: str

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def metrics(self) -> dict[str, float]:
        """The /metrics samples as {"name{labels}": value}."""
        with urllib.request.urlopen(self.metrics_url, timeout=5) as response:
            text = response.read().decode()
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                samples[name] = float(value)
        return samples


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


ARGOCD = REPO / "manifests" / "argocd"


def argocd_health(obj: Mapping[str, Any]) -> dict[str, str]:
    """Argo CD's health of a GreenMatrix object as the shipped Lua check computes it (lupa's Lua 5.4;
    Argo CD runs the same script in gopher-lua, with the object as the global `obj`)."""
    import lupa

    lua = lupa.LuaRuntime()
    lua.globals().obj = lua.table_from(obj, recursive=True)
    verdict = lua.execute((ARGOCD / f"{str(obj['kind']).lower()}-health.lua").read_text())
    return {"status": str(verdict["status"]), "message": str(verdict["message"] or "")}


def kstatus(lab: Lab, *objects: Mapping[str, Any]) -> list[dict[str, str]]:
    """kstatus of each object as kpt, Flux and cli-utils compute it (sigs.k8s.io/cli-utils, built by
    the lab from gomod/kstatus): Current, InProgress, Failed, ..."""
    lines = "".join(json.dumps(o) + "\n" for o in objects)
    done = subprocess.run(
        [str(lab.bin_dir / "kstatus")], input=lines, capture_output=True, text=True, check=True, timeout=30
    )
    return [json.loads(line) for line in done.stdout.splitlines()]


def gpu_deployment(
    namespace: str, name: str, replicas: int, product: str, annotations: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A Deployment of `replicas` one-GPU vLLM pods pinned to `product` (kwok runs them on the lab's
    fake GPU nodes)."""
    labels = {"app": name}
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        meta["annotations"] = dict(annotations)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": {"nvidia.com/gpu.product": product},
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
