"""What a running lab looks like on disk: `run/state.json`, rewritten after every change."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from greenmatrix_lab.health import Probe

STATE_VERSION = 1


@dataclass
class ComponentState:
    pid: int
    exe: str
    ports: dict[str, int]
    log: str
    probe: Probe


@dataclass
class LabState:
    kubeconfig: str
    bin_dir: str
    prometheus_url: str = ""
    apiserver_url: str = ""
    nodes_file: str = ""
    ready: bool = False
    # Started by `Lab.borrowed()` (a test session), so stopped when its last user leaves.
    borrowed: bool = False
    components: dict[str, ComponentState] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        document = {"version": STATE_VERSION, **asdict(self)}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(document, indent=2) + "\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> LabState | None:
        """The saved state, or None if there is none or it was written by another layout."""
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if document.pop("version", None) != STATE_VERSION:
            return None
        components = {
            name: ComponentState(**{**raw, "probe": Probe(**raw["probe"])})
            for name, raw in document.pop("components", {}).items()
        }
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in document.items() if k in known}, components=components)
