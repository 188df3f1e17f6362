"""Prometheus as the lab runs it: its config, and scrape targets tests add at runtime."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from greenmatrix_lab.errors import LabError

SCRAPE_INTERVAL = "5s"
SCRAPE_INTERVAL_S = 5.0
# Emulated workload pods (`lab replay`) are scraped by their own job with honor_labels: their DCGM
# series carry the workload's namespace/pod, as a node's dcgm-exporter does, and must keep them.
WORKLOAD_JOB = "workloads"
# Remote-written history (`lab replay --backfill`) lands behind the head; without this window
# Prometheus refuses samples older than about an hour before the newest.
OUT_OF_ORDER_WINDOW = "3d"
_TARGET_FILE_NAME = re.compile(r"^[A-Za-z0-9][-A-Za-z0-9_.]*$")


def find_prometheus(environ: Mapping[str, str] = os.environ) -> str:
    for candidate in (
        environ.get("GREENMATRIX_LAB_PROMETHEUS"),
        shutil.which("prometheus"),
        "/usr/bin/prometheus",
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise LabError(
        "prometheus not found: `apt-get install prometheus` (the lab runs the binary itself, "
        "not the service) or set GREENMATRIX_LAB_PROMETHEUS to a prometheus >= 2.33 binary"
    )


def write_config(config_path: Path, targets_dir: Path, port: int, apiserver_port: int, pki_dir: Path) -> None:
    """Scrape Prometheus itself, the apiserver (as system:monitoring) and whatever file_sd finds."""
    targets_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": [
            {"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]},
            {
                "job_name": "kube-apiserver",
                "scheme": "https",
                "tls_config": {
                    "ca_file": str(pki_dir / "ca.crt"),
                    "cert_file": str(pki_dir / "prometheus.crt"),
                    "key_file": str(pki_dir / "prometheus.key"),
                },
                "static_configs": [{"targets": [f"127.0.0.1:{apiserver_port}"]}],
            },
            {
                "job_name": "lab",
                "file_sd_configs": [
                    {
                        "files": [str(targets_dir / "*.json"), str(targets_dir / "*.yaml")],
                        "refresh_interval": SCRAPE_INTERVAL,
                    }
                ],
            },
        ],
    }
    config_path.write_text(yaml.safe_dump(with_workloads(config, targets_dir), sort_keys=False))


def workload_targets_dir(targets_dir: Path) -> Path:
    """Where the workloads job finds its file_sd target files (outside the lab job's glob)."""
    return targets_dir / WORKLOAD_JOB


def with_workloads(config: Mapping[str, Any], targets_dir: Path) -> dict[str, Any]:
    """`config` plus the workloads scrape job and the out-of-order window, when missing."""
    amended = copy.deepcopy(dict(config))
    tsdb = amended.setdefault("storage", {}).setdefault("tsdb", {})
    tsdb.setdefault("out_of_order_time_window", OUT_OF_ORDER_WINDOW)
    jobs = amended.setdefault("scrape_configs", [])
    if not any(job.get("job_name") == WORKLOAD_JOB for job in jobs):
        directory = workload_targets_dir(targets_dir)
        directory.mkdir(parents=True, exist_ok=True)
        jobs.append(
            {
                "job_name": WORKLOAD_JOB,
                "honor_labels": True,
                "file_sd_configs": [
                    {"files": [str(directory / "*.json")], "refresh_interval": SCRAPE_INTERVAL}
                ],
            }
        )
    return amended


def ensure_workload_scraping(config_path: Path, targets_dir: Path, prometheus_url: str) -> bool:
    """Give a lab started before the workloads job existed that job; True if Prometheus was reloaded."""
    config = yaml.safe_load(config_path.read_text())
    amended = with_workloads(config, targets_dir)
    if amended == config:
        return False
    tmp = config_path.with_suffix(".yml.tmp")
    tmp.write_text(yaml.safe_dump(amended, sort_keys=False))
    os.replace(tmp, config_path)
    request = urllib.request.Request(prometheus_url.rstrip("/") + "/-/reload", method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never proxy
    try:
        with opener.open(request, timeout=30) as response:
            response.read()
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace").strip()
        raise LabError(f"Prometheus refused the amended {config_path} ({error.code}): {detail}") from error
    except OSError as error:
        raise LabError(f"Prometheus at {prometheus_url} did not reload {config_path}: {error}") from error
    return True


def write_scrape_targets(
    targets_dir: Path, name: str, targets: Sequence[str], labels: Mapping[str, str] | None = None
) -> Path:
    """Add (or replace) a file_sd target group; Prometheus picks it up within a refresh interval."""
    if not _TARGET_FILE_NAME.match(name):
        raise ValueError(f"name must be letters, digits, '-', '_' or '.', got {name!r}")
    if not targets or not all(isinstance(t, str) and ":" in t for t in targets):
        raise ValueError(f"targets must be non-empty host:port strings, got {list(targets)!r}")
    path = targets_dir / f"{name}.json"
    # Write then rename: Prometheus must never read a half-written file.
    tmp = targets_dir / f".{name}.json.tmp"
    tmp.write_text(json.dumps([{"targets": list(targets), "labels": dict(labels or {})}]))
    os.replace(tmp, path)
    return path
