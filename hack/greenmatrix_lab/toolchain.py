"""Builds the control-plane binaries from the pinned Go modules, once per pin.

Each module in `gomod/` is built in a copy under the cache, so the package data stays
read-only and a wheel install works too. Outputs are keyed by a hash of go.mod, go.sum,
its Go files, the packages, the linker flags and the Go version: a changed pin rebuilds,
anything else reuses the binaries.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from greenmatrix_lab.errors import LabError
from greenmatrix_lab.layout import GOMOD_DIR, KUBE_VERSION, Layout

_MAJOR, _MINOR = KUBE_VERSION.lstrip("v").split(".")[:2]
# Without these the binaries report v0.0.0, and clients refuse to talk to them properly.
_KUBE_LDFLAGS = (
    f"-s -w -X k8s.io/component-base/version.gitVersion={KUBE_VERSION} "
    f"-X k8s.io/component-base/version.gitMajor={_MAJOR} "
    f"-X k8s.io/component-base/version.gitMinor={_MINOR}"
)
_MODULE_FILES = ("go.mod", "go.sum")
_COMPLETE = ".complete"


@dataclass(frozen=True)
class GoModule:
    """One folder of `gomod/` and the binaries built from it."""

    name: str
    packages: tuple[str, ...]
    binaries: tuple[str, ...]
    ldflags: str = "-s -w"

    @property
    def source_dir(self) -> Path:
        return GOMOD_DIR / self.name

    def files(self) -> list[str]:
        """What a build reads: go.mod, go.sum and the Go files (tools.go pins; main.go is a program)."""
        return [*_MODULE_FILES, *sorted(p.name for p in self.source_dir.glob("*.go"))]


MODULES: tuple[GoModule, ...] = (
    GoModule(
        "kube",
        packages=tuple(
            f"k8s.io/kubernetes/cmd/{b}"
            for b in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
        ),
        binaries=("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"),
        ldflags=_KUBE_LDFLAGS,
    ),
    GoModule("etcd", packages=("go.etcd.io/etcd/server/v3",), binaries=("etcd",)),
    GoModule("kwok", packages=("sigs.k8s.io/kwok/cmd/kwok",), binaries=("kwok",)),
    # kstatus as kpt, Flux and cli-utils compute it, over objects on stdin (tests/lab/test_kstatus.py).
    GoModule("kstatus", packages=(".",), binaries=("kstatus",)),
    # Renders and lints charts/greenmatrix (tests/lab/test_install*.py). The -X flags are those of
    # helm's Makefile: its version (= the pin in gomod/helm/go.mod) and the Kubernetes version
    # `helm template` assumes (= its client-go's).
    GoModule(
        "helm",
        packages=("helm.sh/helm/v3/cmd/helm",),
        binaries=("helm",),
        ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=v3.19.5"
        + "".join(
            f" -X helm.sh/helm/v3/pkg/{pkg}.k8sVersion{part}={value}"
            for pkg in ("chartutil", "lint/rules")
            for part, value in (("Major", 1), ("Minor", 34))
        ),
    ),
)


def go_env(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The environment every lab build runs in: local toolchain, committed go.sum, no checksum DB."""
    env = dict(environ)
    env.update(GOTOOLCHAIN="local", GOSUMDB="off", GOFLAGS="-mod=mod")
    return env


def find_go(environ: Mapping[str, str] = os.environ) -> str:
    candidates = [environ.get("GREENMATRIX_LAB_GO"), shutil.which("go"), "/usr/local/go/bin/go"]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise LabError(
        "Go toolchain not found: install Go >= 1.24 (or set GREENMATRIX_LAB_GO to its `go` binary)"
    )


def build_key(module: GoModule, go_version: str) -> str:
    digest = hashlib.sha256()
    for file_name in module.files():
        digest.update(file_name.encode() + b"\0" + (module.source_dir / file_name).read_bytes() + b"\0")
    for part in (*module.packages, module.ldflags, go_version):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Toolchain:
    """Finds or builds the lab's Go binaries under `layout.build_dir`."""

    layout: Layout
    say: Callable[[str], None] = lambda message: None

    def missing(self) -> list[str]:
        """Modules that `ensure_built` would have to build (empty when all are cached)."""
        go_version = self._go_version(find_go())
        return [
            m.name
            for m in MODULES
            if not (self.layout.build_dir / f"{m.name}-{build_key(m, go_version)}" / _COMPLETE).exists()
        ]

    def ensure_built(self) -> dict[str, Path]:
        """Return binary name -> path for every module, building what is missing."""
        go = find_go()
        go_version = self._go_version(go)
        binaries: dict[str, Path] = {}
        for module in MODULES:
            out_dir = self.layout.build_dir / f"{module.name}-{build_key(module, go_version)}"
            if not (out_dir / _COMPLETE).exists():
                self._build(go, module, out_dir)
            binaries.update({name: out_dir / name for name in module.binaries})
        return binaries

    def _go_version(self, go: str) -> str:
        result = subprocess.run(
            [go, "env", "GOVERSION"], env=go_env(), capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise LabError(f"`{go} env GOVERSION` failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def _build(self, go: str, module: GoModule, out_dir: Path) -> None:
        work_dir = out_dir.with_name(out_dir.name + ".src")
        log_path = out_dir.with_name(out_dir.name + ".log")
        staging = out_dir.with_name(out_dir.name + ".tmp")
        for stale in (work_dir, staging):
            shutil.rmtree(stale, ignore_errors=True)
        work_dir.mkdir(parents=True)
        for file_name in module.files():
            shutil.copy2(module.source_dir / file_name, work_dir / file_name)
        # `-o dir/` names a binary after its package, which for go.etcd.io/etcd/server/v3 is not `etcd`.
        output = f"{staging}/" if len(module.packages) > 1 else str(staging / module.binaries[0])
        argv = [go, "build", f"-ldflags={module.ldflags}", "-o", output, *module.packages]
        self.say(f"building {module.name} ({', '.join(module.binaries)}); log: {log_path}")
        started = time.monotonic()
        with log_path.open("w") as log:
            log.write("$ " + " ".join(argv) + "\n")
            log.flush()
            result = subprocess.run(argv, cwd=work_dir, env=go_env(), stdout=log, stderr=subprocess.STDOUT)
        if result.returncode != 0:
            tail = "\n".join(log_path.read_text().splitlines()[-20:])
            raise LabError(
                f"building {module.name} failed (exit {result.returncode}); log: {log_path}\n{tail}"
            )
        elapsed = time.monotonic() - started
        (staging / _COMPLETE).write_text(f"{elapsed:.0f}\n")
        shutil.rmtree(out_dir, ignore_errors=True)
        staging.rename(out_dir)
        shutil.rmtree(work_dir, ignore_errors=True)
        self._prune_other_builds(module, keep=out_dir)
        self.say(f"built {module.name} in {elapsed:.0f}s")

    def _prune_other_builds(self, module: GoModule, keep: Path) -> None:
        """Old pins are ~350 MB each; keep only the current one."""
        own = re.compile(rf"^{re.escape(module.name)}-[0-9a-f]{{16}}$")
        for path in self.layout.build_dir.iterdir():
            if path.is_dir() and path != keep and own.match(path.name):
                shutil.rmtree(path, ignore_errors=True)
                path.with_name(path.name + ".log").unlink(missing_ok=True)
