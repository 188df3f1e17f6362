"""What the operator keeps in memory about each watched object, and the keys of its work queue.

Kopf's indexes (nodes, policies) and the `ProfileStore` (WorkloadProfiles) hold these snapshots
(plain, frozen, copied out of the watch event) so the reconciler reads every input from memory: no
API read per reconcile. `PolicyView` is a snapshot's OptimizationPolicy parsed, as the evaluation of
other objects needs it.
"""

from __future__ import annotations

import copy
import json
import zlib
from collections.abc import Iterable, Iterator, Mapping
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


class PackedStatus(Mapping[str, Any]):
    """A status kept as compressed canonical JSON: about a tenth of the memory of its dicts (a
    WorkloadProfile's status is ~27 kB as dicts, ~2 kB packed), which is most of what 10,000 profiles
    would otherwise hold. `unpack()` gives the dicts once; the Mapping methods unpack on every call."""

    __slots__ = ("data", "observed_generation")

    def __init__(self, data: bytes, observed_generation: Any = None) -> None:
        self.data = data
        # Read on every watch event (is this the echo of our write?): kept beside the bytes.
        self.observed_generation = observed_generation

    @classmethod
    def of(cls, status: Mapping[str, Any]) -> PackedStatus:
        if isinstance(status, PackedStatus):
            return status
        text = json.dumps(status, sort_keys=True, separators=(",", ":"))
        return cls(zlib.compress(text.encode(), 1), status.get("observedGeneration"))

    def unpack(self) -> dict[str, Any]:
        return json.loads(zlib.decompress(self.data))

    def __getitem__(self, key: str) -> Any:
        return self.unpack()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.unpack())

    def __len__(self) -> int:
        return len(self.unpack())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PackedStatus) and self.data == other.data:
            return True  # canonical JSON: equal bytes are equal statuses (not always the converse: 2 == 2.0)
        if isinstance(other, Mapping):
            return self.unpack() == unpacked(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


def as_served(value: Any) -> Any:
    """`value` with whole floats as ints, as the API server gives them back (Go writes 2.0 as 2): the
    status we write, packed this way, has the bytes of its watch echo, so the echo is told by a byte
    comparison instead of unpacking both (anything else the server changes falls back to that)."""
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if isinstance(value, Mapping):
        return {key: as_served(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [as_served(item) for item in value]
    return value


def unpacked(status: Mapping[str, Any]) -> Mapping[str, Any]:
    """A status as plain dicts, whether it was kept packed or not."""
    return status.unpack() if isinstance(status, PackedStatus) else status


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
    def observed_generation(self) -> Any:
        """The status's observedGeneration, without unpacking a packed status."""
        if isinstance(self.status, PackedStatus):
            return self.status.observed_generation
        return self.status.get("observedGeneration")

    @property
    def api_version(self) -> str:
        return f"{GROUP}/{VERSION}"

    @classmethod
    def from_body(cls, kind: Kind, body: Mapping[str, Any], *, pack: bool = False) -> ObjectRecord:
        """Copy what matters out of a watch event's body (Kopf may reuse the body it hands out);
        `pack`: keep the status packed (for objects held by the thousand)."""
        meta = body.get("metadata", {})
        raw_status = body.get("status") or {}
        return cls(
            kind=kind,
            namespace=meta.get("namespace", ""),
            name=meta.get("name", ""),
            uid=meta.get("uid", ""),
            generation=int(meta.get("generation", 0) or 0),
            resource_version=str(meta.get("resourceVersion", "")),
            labels=dict(meta.get("labels") or {}),
            spec=copy.deepcopy(dict(body.get("spec") or {})),
            status=PackedStatus.of(raw_status) if pack else copy.deepcopy(dict(raw_status)),
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
