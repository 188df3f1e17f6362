"""Prometheus as the lab runs it: its config, and scrape targets tests add at runtime."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from greenmatrix_lab.errors import LabError

SCRAPE_INTERVAL = "5s"
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
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))


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
