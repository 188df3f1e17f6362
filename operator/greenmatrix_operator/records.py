"""What the operator keeps in memory about each watched object, and the keys of its work queue.

Kopf's indexes hold these snapshots (plain, frozen, copied out of the watch event) so the
reconciler reads every input from memory: no API read per reconcile. `PolicyView` is a snapshot's
OptimizationPolicy parsed, as the evaluation of other objects needs it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from pydantic import ValidationError

from greenmatrix import GROUP, VERSION, OptimizationPolicySpec

Kind = Literal["WorkloadProfile", "OptimizationPolicy"]
WORKLOAD_PROFILE: Kind = "WorkloadProfile"
OPTIMIZATION_POLICY: Kind = "OptimizationPolicy"
PLURALS: Mapping[str, str] = {
    WORKLOAD_PROFILE: "workloadprofiles",
    OPTIMIZATION_POLICY: "optimizationpolicies",
}


# As KEDA's `autoscaling.keda.sh/paused`: on a WorkloadProfile or its target, no action is applied.
PAUSED_ANNOTATION = "greenmatrix.io/paused"


class ObjectKey(NamedTuple):
    """One item of the work queue: an object whose status should be brought up to date."""

    kind: Kind
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


@dataclass(frozen=True)
class ObjectRecord:
    """A snapshot of a WorkloadProfile or OptimizationPolicy as last seen on the watch."""

    kind: Kind
    namespace: str
    name: str
    uid: str
    generation: int
    resource_version: str
    labels: Mapping[str, str] = field(default_factory=dict)
    spec: Mapping[str, Any] = field(default_factory=dict)
    status: Mapping[str, Any] = field(default_factory=dict)
    paused: bool = False
    """Whether it carries the annotation `greenmatrix.io/paused: "true"`."""

    @property
    def key(self) -> ObjectKey:
        return ObjectKey(self.kind, self.namespace, self.name)

    @property
    def api_version(self) -> str:
        return f"{GROUP}/{VERSION}"

    @classmethod
    def from_body(cls, kind: Kind, body: Mapping[str, Any]) -> ObjectRecord:
        """Copy what matters out of a watch event's body (Kopf may reuse the body it hands out)."""
        meta = body.get("metadata", {})
        return cls(
            kind=kind,
            namespace=meta.get("namespace", ""),
            name=meta.get("name", ""),
            uid=meta.get("uid", ""),
            generation=int(meta.get("generation", 0) or 0),
            resource_version=str(meta.get("resourceVersion", "")),
            labels=dict(meta.get("labels") or {}),
            spec=copy.deepcopy(dict(body.get("spec") or {})),
            status=copy.deepcopy(dict(body.get("status") or {})),
            paused=str((meta.get("annotations") or {}).get(PAUSED_ANNOTATION, "")).lower() == "true",
        )


@dataclass(frozen=True)
class PolicyView:
    """A parsed OptimizationPolicy with its object name (the engine's `applied_policy` picks among these)."""

    name: str
    spec: OptimizationPolicySpec


def parse_policies(raw: Iterable[tuple[str, Mapping[str, Any]]]) -> list[PolicyView]:
    """Policies that parse; one that does not is reported on its own status and applies to nothing."""
    views = []
    for name, spec in raw:
        try:
            views.append(PolicyView(name, OptimizationPolicySpec.model_validate(spec)))
        except ValidationError:
            continue
    return views
