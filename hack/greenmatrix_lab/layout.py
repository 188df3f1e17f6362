"""Where the lab keeps its package data, its builds and its running cluster."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
GOMOD_DIR = PACKAGE_DIR / "gomod"
DEFAULT_NODES_FILE = PACKAGE_DIR / "nodes" / "default.yaml"

# Must match the k8s.io/kubernetes pin in gomod/kube/go.mod.
KUBE_VERSION = "v1.34.4"

CACHE_ENV = "GREENMATRIX_LAB_CACHE"
DEFAULT_CACHE = "~/.cache/greenmatrix/lab"


@dataclass(frozen=True)
class Layout:
    """Paths under the cache directory. Builds survive `lab down`; the run directory does not."""

    cache_dir: Path

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Layout:
        raw = environ.get(CACHE_ENV) or DEFAULT_CACHE
        return cls(Path(raw).expanduser().absolute())

    @property
    def build_dir(self) -> Path:
        return self.cache_dir / "build"

    @property
    def lock_file(self) -> Path:
        return self.cache_dir / "lab.lock"

    @property
    def run_dir(self) -> Path:
        return self.cache_dir / "run"

    @property
    def state_file(self) -> Path:
        return self.run_dir / "state.json"

    @property
    def log_dir(self) -> Path:
        return self.run_dir / "logs"

    @property
    def pki_dir(self) -> Path:
        return self.run_dir / "pki"

    @property
    def bin_dir(self) -> Path:
        return self.run_dir / "bin"

    @property
    def kubeconfig(self) -> Path:
        return self.run_dir / "kubeconfig"

    @property
    def prometheus_dir(self) -> Path:
        return self.run_dir / "prometheus"

    @property
    def scrape_targets_dir(self) -> Path:
        """Prometheus reads file_sd target files (*.json, *.yaml) from here at runtime."""
        return self.prometheus_dir / "targets"
